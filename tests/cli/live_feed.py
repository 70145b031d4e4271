"""What the live-stream tests (tests/cli/test_live_stdin.py, test_live_sources.py) feed `dymn-tag --live`:
noise with tones, 16-bit samples, an `arecord` WAV header, and a run whose stdin is written at a chosen pace."""

from __future__ import annotations

import json
import struct
import subprocess
import threading
import time

import numpy as np

from tests.support import DYMN_TAG

RATE = 32_000


def noise_with_tones(seconds: float, *, rate: int = RATE, channels: int = 1, seed: int = 0) -> np.ndarray:
    """`[frames, channels]` float32: a tone that comes and goes every 1.5 s over a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    mono = np.where((t // 1.5) % 2 == 1, 0.4 * np.sin(2 * np.pi * 440 * t), 0.0) + 0.02 * rng.standard_normal(len(t))
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32) * np.linspace(1.0, 0.5, channels, dtype=np.float32)


def s16(frames: np.ndarray) -> bytes:
    return (np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes()


def streaming_wav_header(rate: int, channels: int) -> bytes:
    """A 16-bit WAV header as `arecord` writes it to a pipe: the lengths unknown (0x7fffffff)."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 0x7FFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", 0x7FFFFFFF)
    )


class LiveRun:
    """`dymn-tag --live ...` with stdin a pipe we write at a chosen pace; records read as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [DYMN_TAG, "--live", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.records: list[tuple[float, dict]] = []  # (monotonic arrival, record)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.written: list[tuple[int, float]] = []  # (bytes written so far, monotonic time)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.records.append((time.monotonic(), json.loads(line)))

    def feed(self, data: bytes, *, seconds_per_byte: float, chunk: int = 6400) -> None:
        """Write `data` at a pace; `written` notes (bytes of this call so far, time) after each chunk."""
        start, total = time.monotonic(), 0
        self.written = []
        for k in range(0, len(data), chunk):
            self.process.stdin.write(data[k : k + chunk])
            self.process.stdin.flush()
            total += len(data[k : k + chunk])
            self.written.append((total, time.monotonic()))
            time.sleep(max(0.0, start + total * seconds_per_byte - time.monotonic()))

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        self.process.stdin.close()
        return self.wait(timeout)

    def wait(self, timeout: float = 120) -> tuple[int, str]:
        stderr = self.process.stderr.read().decode()
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code, stderr

    def of(self, kind: str) -> list[dict]:
        return [r for _, r in self.records if r["type"] == kind]
