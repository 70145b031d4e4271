"""Cached downloads from a real loopback HTTP server: hash records, tampering, supplied hashes, dropped
connections, errors, stalls, progress output, two processes at once, files placed by hand.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time

import pytest

from dymn_cli.errors import DownloadError, UsageError
from dymn_cli.models import download as downloading
from dymn_cli.models.download import download
from dymn_cli.models.weights import get_record
from tests.http_server import serve_directory
from tests.models.release_files import FILENAME, NAME, SOURCE, leftovers
from tests.support import SAFETY_NET


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
        out, err = child.communicate(timeout=SAFETY_NET)
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
