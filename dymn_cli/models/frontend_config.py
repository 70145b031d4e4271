"""The front end's settings (`FrontEndConfig`), free of torch: a run checks its window settings and
starts decoding with them before torch is imported."""

from __future__ import annotations

from dataclasses import dataclass

from dymn_cli.audio.decode import SAMPLE_RATE
from dymn_cli.audio.windows import WindowGrid
from dymn_cli.errors import UsageError

MIN_WINDOW_FRAMES = 9
"""The shortest window the networks take, in log-mel frames (0.09 s at 32 kHz)."""


@dataclass(frozen=True)
class FrontEndConfig:
    """Settings that belong to the weights: every published AudioSet checkpoint uses these."""

    sample_rate: int = SAMPLE_RATE
    n_mels: int = 128
    n_fft: int = 1024
    win_length: int = 800
    hop_length: int = 320
    f_min: float = 0.0
    f_max: float = 15_000.0
    preemphasis: float = 0.97

    def frames(self, n_samples: int) -> int:
        """Number of log-mel frames for a waveform of `n_samples` (pre-emphasis drops one sample)."""
        return (n_samples - 1) // self.hop_length + 1

    def window_grid(self, *, window: float, hop: float) -> WindowGrid:
        """The window grid of `window` and `hop` seconds at this front end's rate: a window gives the
        network at least `MIN_WINDOW_FRAMES` log-mel frames, a hop is at least one frame."""
        grid = WindowGrid.from_seconds(window=window, hop=hop, sample_rate=self.sample_rate)
        shortest = self.hop_length * MIN_WINDOW_FRAMES
        if grid.window < shortest:
            raise UsageError(
                f"window must be at least {shortest / self.sample_rate:g} s ({MIN_WINDOW_FRAMES} log-mel frames), got {window:g}"
            )
        if grid.hop < self.hop_length:
            raise UsageError(f"hop must be at least {self.hop_length / self.sample_rate:g} s (one log-mel frame), got {hop:g}")
        return grid
