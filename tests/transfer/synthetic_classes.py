"""Synthetic sound classes for the classification-head tests (tests/transfer/test_head_*.py): tones,
noise, click trains and chirps with varied pitch, rate and level; and `dymn-tag` run as a subprocess."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile

from tests.support import DYMN_TAG, SAFETY_NET

RATE = 32_000
CLASSES = ("chirp", "clicks", "noise", "tone")
WINDOW, HOP = 1.0, 0.5


def run(args: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DYMN_TAG, *args], capture_output=True, cwd=cwd, timeout=SAFETY_NET)


def synthetic(kind: str, variant: int, *, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """One example of a class; `variant` moves its pitch, rate or colour, `seed` its level and noise."""
    rng = np.random.default_rng(1000 * variant + seed)
    t = np.arange(int(seconds * RATE)) / RATE
    if kind == "tone":
        x = np.sin(2 * np.pi * (250 + 90 * variant) * t)
    elif kind == "noise":
        x = rng.standard_normal(len(t)) * 0.6
    elif kind == "clicks":
        x = np.zeros(len(t))
        x[:: int(RATE / (5 + 2 * variant))] = 1.0
    elif kind == "chirp":
        f0, f1 = 200 + 40 * variant, 3000 + 300 * variant
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    else:
        raise ValueError(kind)
    return (x * (0.3 + 0.5 * rng.random())).astype(np.float32)


def write(path: Path, signal: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, signal, RATE)
    return path
