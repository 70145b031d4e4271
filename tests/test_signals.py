"""Two or three SIGINT / SIGTERM at random short intervals, in tagging, live, train and merge: the process
ends with 128 + the first signal (130 or 143), every record whole, no traceback, no abort.

Each run is held at a known point before the signals: a FIFO that the command opens (tagging, train) or
writes (merge) blocks it until the test opens the other end; a live run has printed its first window."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.audio_factory import tone
from tests.support import DYMN04_WEIGHTS, DYMN_TAG

FAST = ["--weights", str(DYMN04_WEIGHTS), "--device", "cpu", "--window", "1"]
SEQUENCES = [
    (signal.SIGINT, signal.SIGINT),
    (signal.SIGTERM, signal.SIGTERM, signal.SIGTERM),
    (signal.SIGINT, signal.SIGTERM, signal.SIGINT),
]
IDS = ["INT-INT", "TERM-TERM-TERM", "INT-TERM-INT"]


class Run:
    """A `dymn-tag` subprocess with its stdout and stderr collected as they come."""

    def __init__(self, args: list[str], *, stdin: int | None = None) -> None:
        self.proc = subprocess.Popen(
            [DYMN_TAG, *args],
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.stdout: list[bytes] = []
        self.stderr = b""
        self._got_line = threading.Event()
        self._threads = [threading.Thread(target=self._out, daemon=True), threading.Thread(target=self._err, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _out(self) -> None:
        for line in self.proc.stdout:
            self.stdout.append(line)
            self._got_line.set()

    def _err(self) -> None:
        self.stderr = self.proc.stderr.read()

    def wait_for_output(self, timeout: float = 90) -> None:
        assert self._got_line.wait(timeout), "no output came"

    def signal(self, signums: tuple[int, ...], seed: int) -> None:
        pauses = random.Random(seed)
        for signum in signums:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signum)
            time.sleep(pauses.uniform(0.0, 0.3))  # (the intervals are the test's subject, not a wait for an event)

    def finish(self, first: int, timeout: float = 90) -> None:
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        stderr = self.stderr.decode("utf-8", "replace")
        assert code == 128 + first, (code, stderr)
        for bad in ("Traceback", "Exception ignored", "SignalReceived", "Aborted"):
            assert bad not in stderr, stderr
        for line in self.stdout:
            json.loads(line)  # every record whole


def _open_writer_when_read(fifo: Path) -> tuple[threading.Event, list[int]]:
    """Open the FIFO for writing in a thread: the event is set once the command opened it for reading
    (it then waits on it: nothing is written); the list gets the descriptor, for the test to close."""
    opened, held = threading.Event(), []

    def hold() -> None:
        held.append(os.open(fifo, os.O_WRONLY))
        opened.set()

    threading.Thread(target=hold, daemon=True).start()
    return opened, held


def _close(held: list[int]) -> None:
    for fd in held:
        os.close(fd)


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    folder = tmp_path / "audio"
    for label, freq in (("tone", 440.0), ("hum", 120.0)):
        (folder / label).mkdir(parents=True)
        for n in range(2):
            tone(folder / label / f"{n}.wav", freq=freq + n, seconds=1.0)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("signums", SEQUENCES[:2], ids=IDS[:2])
def test_tagging(tmp_path: Path, audio: Path, signums: tuple[int, ...]) -> None:
    fifo = tmp_path / "zz_stream.wav"
    os.mkfifo(fifo)
    opened, held = _open_writer_when_read(fifo)
    run = Run([str(audio / "tone" / "0.wav"), str(audio / "hum" / "0.wav"), str(fifo), *FAST, "-j", "0", "-f", "jsonl"])
    try:
        assert opened.wait(90), "the run never opened the FIFO"
        run.signal(signums, seed=len(signums))
        run.finish(signums[0])
    finally:
        _close(held)


@pytest.mark.slow
@pytest.mark.parametrize("signums", SEQUENCES[2:], ids=IDS[2:])
def test_live(signums: tuple[int, ...]) -> None:
    read_end, write_end = os.pipe()
    run = Run(["--live", "-", "--pcm", "s16le:32000:1", *FAST, "--hop", "0.5", "-q"], stdin=read_end)
    os.close(read_end)
    stop_feeding = threading.Event()

    def feed() -> None:
        block = (np.sin(np.arange(3200) / 5.0) * 8000).astype("<i2").tobytes()
        try:
            while not stop_feeding.is_set():
                os.write(write_end, block)
                time.sleep(0.05)
        except OSError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        run.wait_for_output()
        run.signal(signums, seed=len(signums) + 1)
        run.finish(signums[0])
    finally:
        stop_feeding.set()
        feeder.join(timeout=5)
        os.close(write_end)


@pytest.mark.slow
@pytest.mark.parametrize("signums", SEQUENCES[:1], ids=IDS[:1])
def test_train(tmp_path: Path, audio: Path, signums: tuple[int, ...]) -> None:
    fifo = tmp_path / "held.wav"
    os.mkfifo(fifo)
    data = tmp_path / "data.csv"
    rows = [f"{p},{p.parent.name}" for p in sorted(audio.rglob("*.wav"))]
    data.write_text("path,label\n" + "\n".join([rows[0], f"{fifo},tone", *rows[1:]]) + "\n")
    opened, held = _open_writer_when_read(fifo)
    run = Run(["train", str(data), "-o", str(tmp_path / "head.safetensors"), *FAST, "-j", "0", "--folds", "0", "-q"])
    try:
        assert opened.wait(90), "train never opened the FIFO"
        run.signal(signums, seed=len(signums) + 2)
        run.finish(signums[0])
    finally:
        _close(held)
    assert not (tmp_path / "head.safetensors").exists()


@pytest.mark.parametrize("signums", SEQUENCES[1:2], ids=IDS[1:2])
def test_merge(tmp_path: Path, signums: tuple[int, ...]) -> None:
    shard = tmp_path / "shard.jsonl"
    shard.write_text("".join(json.dumps({"path": f"f{n:05d}.wav", "labels": [["Speech", 0.5]] * 4}) + "\n" for n in range(4000)))
    target = tmp_path / "merged.jsonl"
    os.mkfifo(target)
    run = Run(["merge", str(shard), "-o", str(target), "-q"])
    reader = os.open(target, os.O_RDONLY)  # (returns once merge opened it for writing; unread, it fills and blocks merge)
    try:
        run.signal(signums, seed=len(signums) + 3)
        run.finish(signums[0])
    finally:
        os.close(reader)
