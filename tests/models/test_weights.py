"""Registry, cached downloads from a real loopback HTTP server, and safe checkpoint loading."""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import shutil
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from dymn_cli.errors import DownloadError, UsageError, WeightsError
from dymn_cli.models import download as downloading
from dymn_cli.models import weights
from dymn_cli.models.checkpoints import load_checkpoint, resolve_weights
from dymn_cli.models.download import download
from dymn_cli.models.frontend import FrontEndConfig
from dymn_cli.models.weights import REGISTRY, get_record
from tests.http_server import serve_directory
from tests.support import GOLDEN

SOURCE = GOLDEN / "dymn04_seed0.pt"
NAME = "dymn04_as"
FILENAME = "dymn04_as.pt"


@pytest.fixture(scope="module")
def source_sha256() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


@pytest.fixture
def release(tmp_path_factory, monkeypatch):
    """A loopback release serving the golden DyMN-0.4 state dict as `dymn04_as.pt`, and an empty cache."""
    root = tmp_path_factory.mktemp("release")
    shutil.copyfile(SOURCE, root / FILENAME)
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("DYMN_CACHE_DIR", str(cache))
    with serve_directory(root) as server:
        monkeypatch.setenv("DYMN_RELEASE_URL", server.url)
        server.cache = cache
        yield server


def leftovers(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir()} if cache.exists() else set()


# --- registry ---------------------------------------------------------------------------------------


def test_registry_lists_the_published_audioset_checkpoints():
    assert list(REGISTRY) == [
        "dymn04_as", "dymn10_as", "dymn20_as",
        "mn01_as", "mn02_as", "mn04_as", "mn05_as", "mn10_as", "mn20_as", "mn30_as", "mn40_as", "mn40_as_ext",
    ]  # fmt: skip
    for name, record in REGISTRY.items():
        assert record.name == name
        assert record.frontend == FrontEndConfig()
        assert record.sha256 is None  # the release publishes none; never invent one
        assert record.filename.startswith(name) and record.filename.endswith(".pt")
        assert record.family == ("dymn" if name.startswith("dymn") else "mn")
        if "_mAP_" in record.filename:  # the mAP in the file name is the record's
            assert record.map == int(record.filename.split("_mAP_")[1][:3]) / 1000
    assert [REGISTRY[n].width for n in ("dymn04_as", "dymn10_as", "dymn20_as")] == [0.4, 1.0, 2.0]
    assert [r.width for r in REGISTRY.values() if r.family == "mn"] == [0.1, 0.2, 0.4, 0.5, 1.0, 2.0, 3.0, 4.0, 4.0]


def test_url_follows_the_release_and_its_override(monkeypatch):
    monkeypatch.delenv("DYMN_RELEASE_URL", raising=False)
    assert get_record("dymn20_as").url == (
        "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/dymn20_as_mAP_493.pt"
    )
    monkeypatch.setenv("DYMN_RELEASE_URL", "http://mirror.example/efficientat")  # no trailing slash
    assert get_record("mn10_as").url == "http://mirror.example/efficientat/mn10_as_mAP_471.pt"


def test_records_are_frozen():
    with pytest.raises(AttributeError):
        get_record("mn10_as").width = 2.0  # type: ignore[misc]


def test_unknown_name_is_a_usage_error_with_a_suggestion():
    with pytest.raises(UsageError) as info:
        get_record("dymn10_sa")
    message = str(info.value)
    assert "did you mean 'dymn10_as'" in message
    assert "mn40_as_ext" in message and "\n" not in message
    assert get_record(" DyMN10_AS ") is REGISTRY["dymn10_as"]
    with pytest.raises(UsageError, match="known models"):
        resolve_weights(model="resnet50")


def _parameters_in_golden_listing(stem: str) -> int:
    total = 0
    for line in (GOLDEN / f"{stem}_state_dict.txt").read_text().splitlines():
        key, shape, _ = line.split("\t")
        if key.rsplit(".", 1)[-1] not in {"running_mean", "running_var", "num_batches_tracked", "lambdas", "init_v"}:
            total += math.prod(int(d) for d in shape.strip("()").split(",") if d.strip())
    return total


@pytest.mark.parametrize("name", ["dymn04_as", "dymn20_as", "mn01_as", "mn40_as"])
def test_num_params_counts_the_architecture(name):
    record = get_record(name)
    assert record.num_params == _parameters_in_golden_listing(name.removesuffix("_as"))


# --- cache directory ---------------------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DYMN_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert weights.cache_dir() == tmp_path / "home" / ".cache" / "dymn-cli"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert weights.cache_dir() == tmp_path / "home" / ".cache" / "dymn-cli"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_dir() == tmp_path / "xdg" / "dymn-cli"
    monkeypatch.setenv("DYMN_CACHE_DIR", str(tmp_path / "mine"))
    assert weights.cache_dir() == tmp_path / "mine"
    assert not any(tmp_path.iterdir())  # asking never creates anything


# --- downloads ---------------------------------------------------------------------------------------


def test_first_download_writes_file_and_hash_record(release, source_sha256):
    path = download(NAME, progress=False)
    assert path == release.cache / FILENAME
    assert hashlib.sha256(path.read_bytes()).hexdigest() == source_sha256
    assert (release.cache / (FILENAME + ".sha256")).read_text() == f"{source_sha256}  {FILENAME}\n"
    assert leftovers(release.cache) == {FILENAME, FILENAME + ".sha256"}
    assert release.request_count(FILENAME) == 1


def test_cached_file_is_used_without_contacting_the_server(release, source_sha256):
    first = download(NAME, progress=False)
    second = download(get_record(NAME), progress=False)
    third = download(NAME, sha256=source_sha256.upper(), progress=False)
    assert first == second == third
    assert release.request_count() == 1


def test_tampered_cache_file_is_detected(release):
    path = download(NAME, progress=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DownloadError) as info:
        download(NAME, progress=False)
    message = str(info.value)
    assert "corrupt or have been tampered with" in message and str(path) in message and "delete" in message
    assert release.request_count() == 1  # detection only: the file is left for the user to look at


def test_supplied_hash_is_checked_against_the_cache_too(release, source_sha256):
    download(NAME, progress=False)
    with pytest.raises(DownloadError, match="does not match the expected"):
        download(NAME, sha256="0" * 64, progress=False)


def test_wrong_supplied_hash_saves_nothing(release, source_sha256):
    with pytest.raises(DownloadError) as info:
        download(NAME, sha256="ab" * 32, progress=False)
    assert source_sha256 in str(info.value) and "ab" * 32 in str(info.value)
    assert leftovers(release.cache) == set()


def test_malformed_hash_is_a_usage_error(release):
    with pytest.raises(UsageError, match="SHA-256"):
        download(NAME, sha256="not-a-hash", progress=False)
    assert release.request_count() == 0


def test_connection_dropped_mid_file_leaves_nothing(release):
    release.drop_after = SOURCE.stat().st_size // 2
    with pytest.raises(DownloadError) as info:
        download(NAME, progress=False)
    message = str(info.value)
    assert release.url in message and f"of {SOURCE.stat().st_size} bytes" in message and "\n" not in message
    assert leftovers(release.cache) == set()
    release.drop_after = None  # and the next attempt starts afresh
    assert download(NAME, progress=False).stat().st_size == SOURCE.stat().st_size


def test_http_404_is_a_download_error(release):
    missing = get_record("mn10_as")
    with pytest.raises(DownloadError) as info:
        download(missing, progress=False)
    message = str(info.value)
    assert missing.url in message and "404" in message and "\n" not in message
    assert leftovers(release.cache) == set()


def test_unreachable_server_is_a_download_error(monkeypatch, tmp_path):
    with serve_directory(tmp_path) as server:
        dead = server.url  # the port is closed once the server is gone
    monkeypatch.setenv("DYMN_RELEASE_URL", dead)
    with pytest.raises(DownloadError, match="cannot download http://127.0.0.1"):
        download(NAME, progress=False, cache=tmp_path / "cache")


def test_stalled_server_times_out(release, monkeypatch):
    monkeypatch.setattr(downloading, "DOWNLOAD_TIMEOUT_S", 0.2)
    release.chunk_delay = 1.0
    with pytest.raises(DownloadError, match="timed out after 0.2 s"):
        download(NAME, progress=False)
    assert leftovers(release.cache) == set()


def test_no_progress_output_when_stderr_is_not_a_terminal(release, capfd):
    download(NAME, progress=True)
    assert capfd.readouterr() == ("", "")


_CHILD = """
import sys
from dymn_cli.models.download import download
print("ready", flush=True)
print(download("dymn04_as", progress=False), flush=True)
"""


@pytest.mark.slow
def test_two_processes_downloading_at_once_both_succeed(release, source_sha256):
    release.chunk_delay = 0.003  # ~0.4 s per download
    env = {**os.environ, "DYMN_RELEASE_URL": release.url, "DYMN_CACHE_DIR": str(release.cache)}
    lock = os.open(release.cache, os.O_RDONLY)  # (downloads lock the cache folder itself)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # hold both children at the door, so that they contend for real
        children = [
            subprocess.Popen([sys.executable, "-c", _CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        for child in children:
            assert child.stdout.readline() == b"ready\n", child.stderr.read().decode()
        time.sleep(0.2)
        assert release.request_count() == 0
    finally:
        os.close(lock)
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()
        assert out.decode().strip() == str(release.cache / FILENAME)
    assert hashlib.sha256((release.cache / FILENAME).read_bytes()).hexdigest() == source_sha256
    assert leftovers(release.cache) == {FILENAME, FILENAME + ".sha256"}
    assert release.request_count() == 1  # one downloaded and verified; the other waited, then found it


def test_file_placed_in_the_cache_by_hand_is_adopted(monkeypatch, tmp_path, source_sha256):
    monkeypatch.setenv("DYMN_RELEASE_URL", "http://127.0.0.1:9/")  # discard port: must not be needed
    shutil.copyfile(SOURCE, tmp_path / FILENAME)
    assert download(NAME, cache=tmp_path, progress=False) == tmp_path / FILENAME
    assert (tmp_path / (FILENAME + ".sha256")).read_text().split()[0] == source_sha256


# --- loading -----------------------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pickle_that_would_run_code_is_refused(tmp_path, zip_format):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "x": _RunsCode(marker)}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(WeightsError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "refusing to load" in message and "execute code" in message and "system" in message
    assert not marker.exists()


def test_the_code_running_pickle_really_runs_code(tmp_path):
    """The payload above is live: an unsafe load would have created the marker."""
    marker = tmp_path / "marker"
    torch.save({"x": _RunsCode(marker)}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.read_text().strip() == "pwned"


@pytest.mark.parametrize(
    "content, said",
    [
        (b"", "empty (0 bytes)"),
        (b"layers.0.weight 0.1 0.2\n", "a text file"),
        (b"<!DOCTYPE html><html><body>Not Found</body></html>", "an HTML page"),
        (bytes(range(256)) * 4, "unrecognised binary data"),
        (b"\x80\x02" + bytes(range(256)), "not a readable PyTorch checkpoint"),  # looks like a pickle, is not one
        (b"PK\x03\x04" + bytes(100), "zip archive"),
        (b'\x10\x00\x00\x00\x00\x00\x00\x00{"w": {}}      ', "safetensors"),
    ],
    ids=["zero-bytes", "text", "html", "random-bytes", "pickle-like", "broken-zip", "safetensors"],
)
def test_files_that_are_not_checkpoints(tmp_path, content, said):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as info:
        load_checkpoint(path)
    assert said in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_random_bytes(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(WeightsError, match="PyTorch checkpoint"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "cut.pt"
    path.write_bytes(SOURCE.read_bytes()[:100_000])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(WeightsError, match="not found: .*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
    with pytest.raises(WeightsError, match="not a file"):
        load_checkpoint(tmp_path)


def test_flat_state_dict_loads_on_cpu():
    state = load_checkpoint(SOURCE)
    assert type(state) is dict and len(state) == 578
    assert list(state) == [line.split("\t")[0] for line in (GOLDEN / "dymn04_state_dict.txt").read_text().splitlines()]
    assert all(t.device.type == "cpu" for t in state.values())


@pytest.mark.parametrize("key", ["model", "state_dict"])
def test_wrapped_state_dicts_are_unwrapped(tmp_path, key):
    inner = OrderedDict(a=torch.ones(2), b=torch.zeros(3, dtype=torch.int64))
    path = tmp_path / "wrapped.pt"
    torch.save({key: inner, "epoch": 12, "mAP": 0.45}, path)
    state = load_checkpoint(path)
    assert list(state) == ["a", "b"] and torch.equal(state["b"], inner["b"])


@pytest.mark.parametrize(
    "obj, said",
    [
        ([torch.zeros(1)], "a list of 1 items"),
        (torch.zeros(2, 3), "a single tensor of shape (2, 3)"),
        ({"w": torch.zeros(1), "epoch": 3}, "entry 'epoch' is int"),
        ({}, "an empty mapping"),
        ({"model": {"w": [1, 2]}}, "entry 'model' is dict"),
    ],
)
def test_other_contents_are_named(tmp_path, obj, said):
    path = tmp_path / "odd.pt"
    torch.save(obj, path)
    with pytest.raises(WeightsError) as info:
        load_checkpoint(path)
    assert said in str(info.value) and "expected a state dict" in str(info.value)


# --- resolve_weights -------------------------------------------------------------------------------------


def test_local_weights_win_and_need_no_network(monkeypatch, tmp_path, source_sha256):
    monkeypatch.setenv("DYMN_RELEASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("DYMN_CACHE_DIR", str(tmp_path / "cache"))
    record, state = resolve_weights(model="dymn04_as", weights=SOURCE, sha256=source_sha256)
    assert record is REGISTRY["dymn04_as"] and len(state) == 578
    record, state = resolve_weights(weights=str(SOURCE))
    assert record is None and len(state) == 578
    assert not (tmp_path / "cache").exists()


def test_local_weights_with_a_wrong_hash(tmp_path):
    with pytest.raises(WeightsError, match="does not match the expected SHA-256"):
        resolve_weights(weights=SOURCE, sha256="0" * 64)
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights(weights=tmp_path / "missing.pt", sha256="0" * 64)


def test_resolve_by_name_downloads_once(release):
    record, state = resolve_weights(model=NAME, progress=False)
    assert record is REGISTRY[NAME] and len(state) == 578
    resolve_weights(model=NAME, progress=False)
    assert release.request_count() == 1


def test_resolve_needs_something():
    with pytest.raises(UsageError):
        resolve_weights()
