"""Sliding analysis windows over a waveform, whole or streamed block by block.

The grid matches the authors' windowed tagging: windows of `window` samples every `hop` samples,
starting at 0; the last window is the first one that reaches the end of the audio and is zero-padded,
and audio shorter than one window becomes a single zero-padded window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dymn_cli.errors import UsageError

MAX_WINDOW_SECONDS = 600.0
"""The longest window: ten minutes, 77 MB of samples and about a gigabyte of activations in the
network (the models were trained on 10-second clips). Longer asks only for memory."""

MAX_BATCH_SAMPLES = 128 * 320_000
"""Samples in one network batch at most (128 windows of 10 s): longer windows make smaller batches."""


@dataclass(frozen=True)
class WindowGrid:
    """Window and hop in samples at the model's sample rate."""

    window: int
    hop: int

    @classmethod
    def from_seconds(cls, *, window: float, hop: float, sample_rate: int) -> WindowGrid:
        """The grid of `window` and `hop` seconds; the front end states the shortest window a model
        takes (`models.frontend_config.FrontEndConfig.window_grid`)."""
        if not (window > 0 and math.isfinite(window)):
            raise UsageError(f"window must be a positive number of seconds, got {window}")
        if not (hop > 0 and math.isfinite(hop)):
            raise UsageError(f"hop must be a positive number of seconds, got {hop}")
        if window > MAX_WINDOW_SECONDS:
            raise UsageError(f"window must be at most {MAX_WINDOW_SECONDS:g} s, got {window:g}")
        return cls(window=max(1, round(window * sample_rate)), hop=max(1, round(hop * sample_rate)))

    def batch_size(self, wanted: int) -> int:
        """`wanted` windows per batch, fewer where the windows are so long that the batch would hold
        more than `MAX_BATCH_SAMPLES` samples (at least one)."""
        return max(1, min(wanted, MAX_BATCH_SAMPLES // self.window))

    def count(self, n_samples: int) -> int:
        """Number of windows that cover `n_samples` samples (at least one)."""
        return 1 + math.ceil(max(0, n_samples - self.window) / self.hop)

    def starts(self, n_samples: int) -> np.ndarray:
        """Start sample of every window."""
        return np.arange(self.count(n_samples), dtype=np.int64) * self.hop

    def cut(self, waveform: np.ndarray) -> np.ndarray:
        """All windows of a whole waveform as `[n_windows, window]`, the last zero-padded."""
        cutter = WindowCutter(self)
        windows = [w for _, w in cutter.feed(waveform)] + [w for _, w in cutter.finish()]
        return np.stack(windows)


class WindowCutter:
    """Cuts windows from a stream of blocks, keeping only the samples that later windows still need."""

    def __init__(self, grid: WindowGrid) -> None:
        self.grid = grid
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # stream position of _buffer[0]
        self._next = 0  # index of the next window to emit
        self.n_samples = 0

    def feed(self, block: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Add samples; yield `(index, window)` for every window that is now complete."""
        block = np.asarray(block, dtype=np.float32)
        self.n_samples += len(block)
        self._buffer = np.concatenate([self._buffer, block]) if len(self._buffer) else block
        yield from self._emit(final=False)

    def finish(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield the remaining windows, zero-padded, once the stream has ended."""
        yield from self._emit(final=True)

    def _emit(self, *, final: bool) -> Iterator[tuple[int, np.ndarray]]:
        window, hop = self.grid.window, self.grid.hop
        while True:
            start = self._next * hop
            # A window exists if it is the first one or if the one before did not reach the end.
            exists = self._next == 0 or start - hop + window < self.n_samples
            complete = start + window <= self.n_samples
            if not exists or not (complete or final):
                break
            offset = start - self._buffer_start
            piece = self._buffer[max(0, offset) : offset + window] if offset < len(self._buffer) else self._buffer[:0]
            if len(piece) < window:
                piece = np.concatenate([piece, np.zeros(window - len(piece), dtype=np.float32)])
            yield self._next, piece.copy()
            self._next += 1
        # Drop what no later window needs.
        keep_from = min(self._next * self.grid.hop - self._buffer_start, len(self._buffer))
        if keep_from > 0:
            self._buffer = self._buffer[keep_from:]
            self._buffer_start += keep_from
