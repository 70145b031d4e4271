"""Inputs that would hang a run are stopped by `--file-timeout` and the run goes on (#14).

Real `dymn-tag` runs against a FIFO nobody writes, a silent standard input, /dev/zero (as a file, as
stdin, in a file list), standard input closed or empty, and an endless standard input (peak memory
measured).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
import time

import pytest

from tests.run.hostile_runs import FAST, assert_clean_stderr, dymn_tag, summary_of
from tests.support import DYMN_TAG, SAFETY_NET


def tagged_paths(stdout: bytes) -> list[str]:
    return [r["path"] for r in map(json.loads, stdout.decode().splitlines()) if "labels" in r]


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "writer"), [("0", "none"), ("2", "none"), ("0", "silent"), ("2", "silent")])
def test_a_stalled_fifo_times_out_and_the_run_goes_on(two_files, tmp_path, workers, writer):
    fifo = tmp_path / "stalled.wav"
    os.mkfifo(fifo)
    # "silent": a writer has the FIFO open and never writes (O_RDWR: opening it does not block)
    held = os.open(fifo, os.O_RDWR) if writer == "silent" else None
    try:
        started = time.monotonic()
        done = dymn_tag([*FAST, "-f", "jsonl", "-j", workers, "--file-timeout", "2", two_files[0], str(fifo), two_files[1]])
        elapsed = time.monotonic() - started
    finally:
        if held is not None:
            os.close(held)
    text = assert_clean_stderr(done.stderr)
    assert f"dymn-tag: {fifo}: timed out after 2 s" in text.splitlines()
    assert tagged_paths(done.stdout) == list(two_files)
    assert done.returncode == 1 and summary_of(text) == (2, 1, 0)
    assert elapsed < 60


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_silent_standard_input_times_out_with_and_without_workers(two_files, workers):
    """With workers, standard input is read in the main process (for a worker); without, decoded as it comes."""
    silent, held = os.pipe()  # the test holds the write end open and never writes
    try:
        done = dymn_tag(
            [*FAST, "-f", "jsonl", "-j", workers, "--file-timeout", "2", "-", two_files[0]], stdin=silent, timeout=SAFETY_NET
        )
    finally:
        os.close(held)
        os.close(silent)
    text = assert_clean_stderr(done.stderr)
    assert "dymn-tag: <stdin>: timed out after 2 s" in text.splitlines()
    assert tagged_paths(done.stdout) == [two_files[0]] and summary_of(text) == (1, 1, 0)


@pytest.mark.slow
def test_dev_zero_as_a_file_as_stdin_and_as_a_file_list(two_files):
    named = dymn_tag([*FAST, "-f", "jsonl", "-j", "0", two_files[0], "/dev/zero", two_files[1]])
    text = assert_clean_stderr(named.stderr)
    assert any(line.startswith("dymn-tag: /dev/zero: not a readable audio file") for line in text.splitlines())
    assert tagged_paths(named.stdout) == list(two_files)
    with open("/dev/zero", "rb") as zero:
        piped = dymn_tag([*FAST, "-f", "jsonl", "--file-timeout", "20", "-", two_files[0]], stdin=zero)
    text = assert_clean_stderr(piped.stderr)
    assert any(line.startswith("dymn-tag: <stdin>: ") for line in text.splitlines())
    assert tagged_paths(piped.stdout) == [two_files[0]] and summary_of(text) == (1, 1, 0)
    listed = dymn_tag([*FAST, "--files-from", "/dev/zero"])
    assert listed.returncode == 2
    assert assert_clean_stderr(listed.stderr).strip() == (
        "dymn-tag: error: /dev/zero: line 1 is longer than 65536 bytes: not a list of paths"
    )


@pytest.mark.slow
def test_standard_input_closed_or_empty_costs_only_that_input(two_files):
    closed = subprocess.run(
        ["bash", "-c", 'exec "$0" "$@" <&-', DYMN_TAG, *FAST, "-f", "jsonl", "-", two_files[0]],
        capture_output=True,
        timeout=SAFETY_NET,
    )
    text = assert_clean_stderr(closed.stderr)
    assert "dymn-tag: <stdin>: cannot read the input (standard input is closed)" in text.splitlines()
    assert tagged_paths(closed.stdout) == [two_files[0]] and closed.returncode == 1
    empty = dymn_tag([*FAST, "-f", "jsonl", two_files[0], "-"], stdin=subprocess.DEVNULL)
    text = assert_clean_stderr(empty.stderr)
    assert "dymn-tag: <stdin>: empty input (0 bytes)" in text.splitlines()
    assert tagged_paths(empty.stdout) == [two_files[0]]
    listed = subprocess.run(
        ["bash", "-c", 'exec "$0" "$@" <&-', DYMN_TAG, *FAST, "--files-from", "-"], capture_output=True, timeout=SAFETY_NET
    )
    assert listed.returncode == 2 and "standard input" in assert_clean_stderr(listed.stderr)


def _peak_rss_mib(args: list[str], *, feed=None) -> tuple[float, bytes, int]:
    """Run dymn-tag, returning its own peak RSS (wait4's, not all the children's) and its stderr."""
    process = subprocess.Popen(
        [DYMN_TAG, *args],
        stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if feed:
        threading.Thread(target=feed, args=(process.stdin,), daemon=True).start()
    stderr = b""
    reader = threading.Thread(target=lambda: globals().__setitem__("_stderr", process.stderr.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join(10)
    stderr = globals().pop("_stderr", b"")
    return usage.ru_maxrss / 1024, stderr, process.returncode


def _endless_wav(stream) -> None:
    """A WAV header that promises 4 GB, then silence for as long as anyone reads."""
    header = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 32_000, 64_000, 2, 16)
    block = bytes(1 << 20)
    try:
        stream.write(header + b"data" + struct.pack("<I", 0xFFFFFFFF))
        while True:
            stream.write(block)
    except (BrokenPipeError, OSError, ValueError):
        pass


@pytest.mark.slow
def test_an_endless_standard_input_is_stopped_by_the_timeout_in_flat_memory(two_files):
    baseline, _, _ = _peak_rss_mib([*FAST, "-j", "0", two_files[0]])
    peak, stderr, code = _peak_rss_mib([*FAST, "--file-timeout", "8", "-", two_files[0]], feed=_endless_wav)
    text = assert_clean_stderr(stderr)
    assert "dymn-tag: <stdin>: timed out after 8 s" in text.splitlines() and code == 1
    assert summary_of(text) == (1, 1, 0)
    # Before #14 standard input was read whole: gigabytes in these 8 s. Now: a 64 MiB buffer, a block
    # of decoded audio and one window's outputs per second of audio (loose bound for a shared machine).
    assert peak < baseline + 400, (peak, baseline)
