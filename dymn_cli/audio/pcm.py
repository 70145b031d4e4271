"""Headerless PCM (`--pcm FORMAT:RATE:CHANNELS`): the sample encodings, and raw bytes turned into float frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dymn_cli.audio.backend import MAX_SOURCE_RATE, MIN_SOURCE_RATE
from dymn_cli.errors import UsageError

__all__ = ["MAX_CHANNELS", "PCM_ENCODINGS", "PcmFormat"]

MAX_CHANNELS = 64

# encoding -> (numpy dtype of one sample, bytes per sample); s24 is unpacked by hand
PCM_ENCODINGS: dict[str, tuple[str, int]] = {
    "u8": ("u1", 1), "s8": ("i1", 1),
    "s16le": ("<i2", 2), "s16be": (">i2", 2),
    "s24le": ("<i4", 3), "s24be": (">i4", 3),
    "s32le": ("<i4", 4), "s32be": (">i4", 4),
    "f32le": ("<f4", 4), "f32be": (">f4", 4),
    "f64le": ("<f8", 8), "f64be": (">f8", 8),
}  # fmt: skip


@dataclass(frozen=True)
class PcmFormat:
    """Headerless PCM: sample encoding, rate and channels, as `FORMAT:RATE:CHANNELS` (`s16le:48000:2`)."""

    encoding: str
    sample_rate: int
    channels: int

    @classmethod
    def parse(cls, text: str) -> PcmFormat:
        parts = text.lower().split(":")
        usage = f"--pcm wants FORMAT:RATE:CHANNELS, e.g. s16le:32000:1 (FORMAT: {', '.join(PCM_ENCODINGS)}), got {text!r}"
        if len(parts) != 3 or parts[0] not in PCM_ENCODINGS:
            raise UsageError(usage)
        try:
            rate, channels = int(parts[1]), int(parts[2])
        except ValueError:
            raise UsageError(usage) from None
        if not (MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE and 1 <= channels <= MAX_CHANNELS):
            raise UsageError(
                f"--pcm {text}: the rate must be {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz (as for files) "
                f"and the channels 1 to {MAX_CHANNELS}"
            )
        return cls(parts[0], rate, channels)

    @property
    def frame_bytes(self) -> int:
        return PCM_ENCODINGS[self.encoding][1] * self.channels

    def read_size(self, most: int) -> int:
        """Bytes one read takes: at most `most`, and at most a second of audio, so that a block resampled
        to the model's rate stays small whatever the declared rate (32 kHz: 128 KiB of float32 at most)."""
        return max(self.frame_bytes, min(most, self.frame_bytes * self.sample_rate))

    def to_frames(self, data: bytes) -> np.ndarray:
        """Whole frames of raw bytes -> float32 `[frames, channels]`, scaled as libsndfile reads PCM."""
        dtype, width = PCM_ENCODINGS[self.encoding]
        if width == 3:  # 24-bit: the three bytes as the high bytes of an int32
            raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
            wide = np.zeros((len(raw), 4), dtype=np.uint8)
            if self.encoding == "s24le":
                wide[:, 1:] = raw
            else:
                wide[:, :3] = raw
            samples = wide.view(dtype)[:, 0]
        else:
            samples = np.frombuffer(data, dtype=dtype)
        frames = samples.reshape(-1, self.channels)
        kind, bits = frames.dtype.kind, frames.dtype.itemsize * 8
        if kind == "f":
            return np.ascontiguousarray(frames, dtype=np.float32)
        if kind == "u":  # u8: centred on 128
            return (frames.astype(np.float32) - np.float32(128.0)) * np.float32(2.0**-7)
        if bits <= 16:
            return frames.astype(np.float32) * np.float32(2.0 ** (1 - bits))
        return (frames.astype(np.float64) * 2.0 ** (1 - bits)).astype(np.float32)
