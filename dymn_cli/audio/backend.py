"""What the decoding backends share: the header facts they report and how they stop."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about an input, without decoding it (where it says enough).

    `frames` counts samples per channel at `sample_rate`; for some PyAV inputs (raw AAC/AC3 streams,
    Matroska/WebM) it is the container's estimate, which can be off by a few milliseconds (or more
    for raw ADTS streams, whose duration FFmpeg guesses from the bit rate).
    """

    duration_seconds: float
    sample_rate: int
    channels: int
    frames: int
    format: str
    """Container: a libsndfile major format ("WAV", "FLAC", "OGG", "MP3", ...) or FFmpeg demuxer name."""
    codec: str
    """libsndfile subtype ("PCM_16", "VORBIS", ...) or FFmpeg decoder name ("aac", "opus", ...)."""
    decoder: str
    """"soundfile" or "pyav": the library that decodes this input."""


class DecodeStopped(Exception):
    """A decoder error after a successful open that ends decoding."""
