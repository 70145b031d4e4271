"""Safe checkpoint loading (pickles that would run code refused, files that are not checkpoints, wrapped
state dicts) and resolve_weights (local weights first, hashes, downloads by name).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from dymn_cli.errors import UsageError, WeightsError
from dymn_cli.models.checkpoints import load_checkpoint, resolve_weights
from dymn_cli.models.weights import REGISTRY
from tests.models.release_files import NAME, SOURCE
from tests.support import GOLDEN


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
