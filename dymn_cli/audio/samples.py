"""Samples: channels to mono and resampling exactly as librosa does, in-memory arrays to float32."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import soxr

from dymn_cli.audio.sources import one_line
from dymn_cli.errors import AudioError, UsageError


def mix_to_mono(frames: np.ndarray, name: str) -> np.ndarray:
    """`[samples, channels]` C-ordered float32 -> 1-D float32, librosa's ``to_mono`` bit for bit.

    ``np.mean(x, axis=1)`` over a C-ordered array equals librosa's ``np.mean(x.T, axis=0)`` and does
    not depend on how the samples are split into blocks (both checked in the tests).
    """
    if frames.shape[1] == 1:
        mono = frames[:, 0].copy()
    else:
        mono = np.mean(frames, axis=1)
    if not np.isfinite(mono).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return mono


def resampled_length(n: int, in_rate: float, out_rate: float) -> int:
    """librosa.resample's ``fix`` length: ``ceil(n * (out / in))`` in the same float arithmetic."""
    return int(math.ceil(n * (float(out_rate) / in_rate)))


def resample(mono: np.ndarray, in_rate: float, out_rate: float) -> np.ndarray:
    if in_rate == out_rate:
        return mono
    out = soxr.resample(mono, in_rate, out_rate, quality="HQ")
    target = resampled_length(len(mono), in_rate, out_rate)
    if len(out) < target:
        out = np.concatenate([out, np.zeros(target - len(out), dtype=np.float32)])
    return out[:target]


class StreamResampler:
    """Mono float32 blocks at `in_rate` -> `out_rate`: the outputs of `feed` and `finish`, joined, equal
    `resample` of the joined inputs bit for bit (libsoxr's output does not depend on the chunking),
    including librosa's zero padding to ``ceil(n * out / in)`` samples."""

    def __init__(self, in_rate: float, out_rate: float) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._soxr = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        self.n_in = self.n_out = 0

    def feed(self, mono: np.ndarray) -> np.ndarray:
        self.n_in += len(mono)
        out = mono if self._soxr is None else self._soxr.resample_chunk(mono, last=False)
        self.n_out += len(out)
        return out

    def finish(self) -> np.ndarray:
        """What soxr still holds, padded (or, never seen, cut) to librosa's length."""
        if self._soxr is None:
            return np.zeros(0, dtype=np.float32)
        tail = self._soxr.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        pad = resampled_length(self.n_in, self.in_rate, self.out_rate) - (self.n_out + len(tail))
        if pad > 0:
            tail = np.concatenate([tail, np.zeros(pad, dtype=np.float32)])
        elif pad < 0:  # soxr rounds, librosa takes the ceiling: cut what is still here
            tail = tail[: max(len(tail) + pad, 0)]
        self.n_out += len(tail)
        return tail


def check_rate(rate: Any, what: str) -> int:
    try:
        ok = float(rate) > 0 and math.isfinite(float(rate))
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(rate, bool):
        raise UsageError(f"{what} must be a positive number of samples per second, got {rate!r}")
    return int(rate) if float(rate).is_integer() else rate


def to_numpy(array: Any, name: str) -> np.ndarray:
    if type(array).__module__.split(".")[0] == "torch" and hasattr(array, "detach"):
        t = array.detach()
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        if t.is_complex():
            raise AudioError(f"{name}: complex samples are not a waveform")
        array = t.cpu().numpy()
    try:
        x = np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise AudioError(f"{name}: not an array of samples ({one_line(exc)})") from None
    return x


def to_float32(x: np.ndarray, name: str) -> np.ndarray:
    """`[samples, channels]` of any real dtype -> C-ordered float32 in PCM's [-1, 1] convention."""
    kind = x.dtype.kind
    if kind == "f":
        out = x.astype(np.float32, copy=False)
    elif kind == "i":
        bits = x.dtype.itemsize * 8
        if bits <= 16:
            out = x.astype(np.float32) * np.float32(2.0 ** (1 - bits))
        else:
            out = (x.astype(np.float64) * 2.0 ** (1 - bits)).astype(np.float32)
    elif kind == "u":
        bits = x.dtype.itemsize * 8
        out = ((x.astype(np.float64) - 2.0 ** (bits - 1)) * 2.0 ** (1 - bits)).astype(np.float32)
    else:
        raise AudioError(f"{name}: unsupported sample type {x.dtype} (use float or integer samples)")
    return np.ascontiguousarray(out)
