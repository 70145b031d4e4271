"""What the decode tests (tests/audio/test_decode_*.py) share: the model's sample rate, the length a
resampled signal must have, and the blocks of a stream joined."""

from __future__ import annotations

import math

import numpy as np

SR = 32_000


def expected_length(frames: int, rate: int, out_rate: int = SR) -> int:
    return frames if rate == out_rate else int(math.ceil(frames * (float(out_rate) / rate)))


def collect(iterator) -> np.ndarray:
    return np.concatenate(list(iterator))
