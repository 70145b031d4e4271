"""Write a small labelled collection for trying `dymn-tag evaluate`: class folders `Dog`, `Cat` and
`Bird` under FOLDER, four 4 s clips each (16 kHz mono), each class with its own kind of sound.

    python examples/labelled_tones.py sounds

Synthetic sounds, not recordings: the figures they give show the report's form, not a model's quality.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile

RATE = 16_000
SECONDS = 4.0


def clip(kind: str, n: int) -> np.ndarray:
    """Barks (bursts of a low tone), meows (gliding tones) or chirps (fast high sweeps), varied by `n`."""
    rng = np.random.default_rng(100 * len(kind) + n)
    t = np.arange(int(SECONDS * RATE)) / RATE
    if kind == "Dog":
        bursts = (np.sin(2 * np.pi * (1.5 + 0.3 * n) * t) > 0.6).astype(float)
        x = bursts * np.sin(2 * np.pi * (300 + 40 * n) * t)
    elif kind == "Cat":
        glide = 500 + 300 * np.sin(2 * np.pi * 0.5 * t + n)
        x = np.sin(2 * np.pi * np.cumsum(glide) / RATE) * np.hanning(len(t))
    else:
        sweep = 3000 + 1500 * ((t * (6 + n)) % 1)
        x = np.sin(2 * np.pi * np.cumsum(sweep) / RATE) * ((t * (6 + n)) % 1 < 0.4)
    x = x + 0.02 * rng.standard_normal(len(t))
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


def write(folder: Path) -> list[Path]:
    written = []
    for kind in ("Dog", "Cat", "Bird"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for n in range(4):
            path = folder / kind / f"{kind.lower()}{n}.wav"
            soundfile.write(path, clip(kind, n), RATE)
            written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/labelled_tones.py FOLDER")
    write(Path(sys.argv[1]))
