"""What the decoding backends share: the header facts they report, the sample rates they accept, and
how they stop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dymn_cli.errors import AudioError

MIN_SOURCE_RATE = 1_000
MAX_SOURCE_RATE = 2_000_000
"""The sample rates (Hz) an input may have. Below 1 kHz nothing of AudioSet's classes is left; above
2 MHz (ultrasound recorders reach 1 MHz) a header is lying: a rate of 0, 1 Hz or 4 GHz fails that input."""


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


def check_source_rate(rate: Any, name: str) -> None:
    if not (isinstance(rate, (int, float)) and MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE):
        raise AudioError(
            f"{name}: its header states a sample rate of {rate} Hz "
            f"(audio has {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz; the file is damaged or not audio)"
        )
