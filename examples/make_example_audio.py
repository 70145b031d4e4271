"""Synthesise the example recording `examples/audio/chimes_and_noise.wav` (12 s, 16 kHz mono).

    python examples/make_example_audio.py

Two-tone door chimes (0.5-3 s), a burst of pink-ish noise like rain or steam (4-8 s) and a steady
hum with clicks (8-12 s): sounds at known times, so timelines and events have something to find.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

RATE = 16_000
TARGET = Path(__file__).parent / "audio" / "chimes_and_noise.wav"


def chime(t: np.ndarray, freq: float, start: float) -> np.ndarray:
    local = np.clip(t - start, 0, None)
    envelope = np.where(t >= start, np.exp(-3.0 * local), 0.0)
    return envelope * (np.sin(2 * np.pi * freq * local) + 0.3 * np.sin(2 * np.pi * 2.76 * freq * local))


def make() -> np.ndarray:
    rng = np.random.default_rng(2023)
    t = np.arange(12 * RATE) / RATE
    x = 0.3 * (chime(t, 659.3, 0.5) + chime(t, 523.3, 1.3))
    noise = np.cumsum(rng.standard_normal(len(t))) * 0.002
    noise = noise - np.convolve(noise, np.ones(400) / 400, mode="same")  # pink-ish, no drift
    x += np.where((t >= 4) & (t < 8), 3.0 * noise, 0.0)
    hum = 0.1 * np.sin(2 * np.pi * 100 * t) + 0.05 * np.sin(2 * np.pi * 200 * t)
    clicks = np.zeros_like(t)
    clicks[(np.arange(8.2, 12, 0.25) * RATE).astype(int)] = 0.8
    x += np.where(t >= 8, hum, 0.0) + np.convolve(clicks, np.exp(-np.arange(80) / 8), mode="same")
    return (0.9 * x / np.abs(x).max()).astype(np.float32)


if __name__ == "__main__":
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(TARGET, make(), RATE, subtype="PCM_16")
    print(TARGET)
