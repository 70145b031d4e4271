"""`dymn-tag` runs watched as they go, for the reliability tests (test_awkward_inputs, test_worker_crashes,
test_interruption_and_resume, test_fuzzed_decoding; tests/writers/test_output_rules.py too).

A FIFO named like an audio file is how these tests hold a run at a known point: the process that
opens it blocks until the test opens the other end (or forever), and every input before it is done.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.audio_factory import make_audio_file
from tests.support import DYMN04_WEIGHTS, DYMN_TAG

WEIGHTS = str(DYMN04_WEIGHTS)
FAST = ["--weights", WEIGHTS, "--device", "cpu", "--window", "1", "--hop", "1", "--top", "3"]
SUMMARY = re.compile(r"^dymn-tag: (\d+) tagged, (\d+) failed(?:, (\d+) skipped)?, \d+:\d\d:\d\d of audio in \d+:\d\d:\d\d")
RATE = 32_000

PROVENANCE = ("model", "settings")
"""What every JSON Lines record carries besides its outcome (dymn_cli.writers.formats.json_lines)."""


def without_provenance(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in PROVENANCE}


def jsonl(path: Path) -> list[dict]:
    """The input records of a JSONL output (every line)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert all("path" in r for r in records)
    return records


def one_line(path: str) -> str:
    """How stderr shows a path (a newline in a name would break the one-line-per-input rule)."""
    return path.replace("\\", "\\\\").replace("\n", "\\n")


def stderr_report(stderr: str) -> tuple[list[str], tuple[int, int, int]]:
    """The lines before the summary, and the summary's (tagged, failed, skipped); the summary must be last."""
    lines = stderr.splitlines()
    assert lines, "no summary line"
    found = SUMMARY.match(lines[-1])
    assert found, f"the last stderr line is not the summary: {lines[-1]!r}"
    return lines[:-1], (int(found[1]), int(found[2]), int(found[3] or 0))


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


class LiveRun:
    """A `dymn-tag` subprocess whose stderr lines are collected as they come."""

    def __init__(self, args: list[str], **kwargs) -> None:
        self.proc = subprocess.Popen(
            [DYMN_TAG, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            **kwargs,
        )
        self.lines: list[str] = []
        self.stdout = b""
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()

    def _read_stdout(self) -> None:
        self.stdout = self.proc.stdout.read()

    def wait_for_line(self, needle: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(needle in line for line in self.lines):
                assert self.proc.poll() is None, f"dymn-tag ended ({self.proc.returncode}) first: {self.lines}"
                assert time.monotonic() < deadline, f"no stderr line with {needle!r}: {self.lines}"
                self._changed.wait(0.1)

    def finish(self, timeout: float = 90) -> int:
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


@contextmanager
def live_run(args: list[str], **kwargs) -> Iterator[LiveRun]:
    run = LiveRun(args, **kwargs)
    try:
        yield run
    finally:
        run.kill()  # (only if a check failed while it was still going)


@contextmanager
def writing_end(fifo: Path, run: LiveRun, timeout: float = 90) -> Iterator[int]:
    """Open the FIFO for writing as soon as the run has opened it for reading (then it is in the run)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as error:
            if error.errno != errno.ENXIO:
                raise
            assert run.proc.poll() is None, f"dymn-tag ended ({run.proc.returncode}) first: {run.lines}"
            assert time.monotonic() < deadline, "the run never opened the FIFO"
            time.sleep(0.02)
    os.set_blocking(fd, True)
    try:
        yield fd
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def wav_bytes(tmp: Path, **kwargs) -> bytes:
    return make_audio_file(tmp / "scratch.wav", **kwargs).read_bytes()
