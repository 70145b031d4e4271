"""Tiny synthetic audio files of any format, for the tests (importable from any test module).

Signals are `[frames, channels]` float arrays in [-1, 1] (the layout soundfile reads and writes).
Files are written with soundfile (libsndfile) where it can encode the format (wav, flac, ogg/vorbis,
ogg/opus, mp3, aiff, au, caf, w64, ...) and with PyAV (FFmpeg) for the rest (m4a/aac, opus in ogg or
webm, mka, wma, ac3, wv, mp4/mov/mkv video with an audio track, and a video without audio).

    from tests.audio_factory import make_audio_file, sine
    path = make_audio_file(tmp_path / "a.m4a", seconds=0.5, sample_rate=44_100, channels=2)

Keep files short (a second or less): the tests that use them should stay fast.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = [
    "AV_AUDIO_FORMATS",
    "SOUNDFILE_FORMATS",
    "make_audio_file",
    "make_video_file",
    "noise",
    "random_bytes_file",
    "signal",
    "silence",
    "sine",
    "truncate_file",
    "write_audio",
    "write_av_audio",
]

# extension -> (soundfile format, default subtype)
SOUNDFILE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".oga": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aif": ("AIFF", "PCM_16"),
    ".aiff": ("AIFF", "PCM_16"),
    ".au": ("AU", "PCM_16"),
    ".caf": ("CAF", "PCM_16"),
    ".w64": ("W64", "PCM_16"),
}

# extension -> (FFmpeg container format, audio codec, codec sample format) for PyAV encoding
AV_AUDIO_FORMATS: dict[str, tuple[str, str, str]] = {
    ".m4a": ("mp4", "aac", "fltp"),
    ".aac": ("adts", "aac", "fltp"),
    ".opus": ("ogg", "libopus", "s16"),
    ".webm": ("webm", "libopus", "s16"),
    ".mka": ("matroska", "libopus", "s16"),
    ".wma": ("asf", "wmav2", "fltp"),
    ".ac3": ("ac3", "ac3", "fltp"),
    ".wv": ("wv", "wavpack", "fltp"),
}

# rates the PyAV encoders accept (everything else is resampled to this one by choosing it up front)
_OPUS_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)


# --------------------------------------------------------------------------- signals


def sine(
    seconds: float = 0.5,
    sample_rate: int = 32_000,
    channels: int = 1,
    *,
    freq: float = 440.0,
    amplitude: float = 0.5,
    seed: int | None = None,
) -> np.ndarray:
    """A sine of `freq` Hz, `[frames, channels]` float64. Channel `c` has frequency `freq * (c + 1)`
    so that channel averaging is visible; `seed`, when given, adds a random phase per channel."""
    n = max(int(round(seconds * sample_rate)), 0)
    t = np.arange(n, dtype=np.float64) / sample_rate
    phases = np.zeros(channels) if seed is None else np.random.default_rng(seed).uniform(0, 2 * np.pi, channels)
    cols = [amplitude * np.sin(2 * np.pi * freq * (c + 1) * t + phases[c]) for c in range(channels)]
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


def noise(
    seconds: float = 0.5,
    sample_rate: int = 32_000,
    channels: int = 1,
    *,
    amplitude: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Uniform white noise in [-amplitude, amplitude], `[frames, channels]` float64, reproducible by `seed`."""
    n = max(int(round(seconds * sample_rate)), 0)
    return np.random.default_rng(seed).uniform(-amplitude, amplitude, size=(n, channels))


def silence(seconds: float = 0.5, sample_rate: int = 32_000, channels: int = 1) -> np.ndarray:
    """Digital silence, `[frames, channels]` float64."""
    return np.zeros((max(int(round(seconds * sample_rate)), 0), channels))


def signal(
    kind: str = "sine",
    seconds: float = 0.5,
    sample_rate: int = 32_000,
    channels: int = 1,
    *,
    seed: int = 0,
    **kwargs: float,
) -> np.ndarray:
    """`kind` is "sine", "noise" or "silence"; extra keywords go to that generator."""
    if kind == "sine":
        return sine(seconds, sample_rate, channels, seed=seed, **kwargs)
    if kind == "noise":
        return noise(seconds, sample_rate, channels, seed=seed, **kwargs)
    if kind == "silence":
        return silence(seconds, sample_rate, channels)
    raise ValueError(f"unknown signal kind {kind!r}")


# --------------------------------------------------------------------------- writers


def _as_frames_channels(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data)
    return data[:, None] if data.ndim == 1 else data


def write_audio(
    path: str | os.PathLike[str],
    data: np.ndarray,
    sample_rate: int,
    *,
    subtype: str | None = None,
    codec: str | None = None,
) -> Path:
    """Write `data` (`[frames]` or `[frames, channels]`) to `path`; the extension picks the format.

    soundfile formats take a libsndfile `subtype` (e.g. "PCM_24", "FLOAT", "DOUBLE", "OPUS" for
    .ogg); PyAV formats take an FFmpeg `codec` override. Unknown extensions raise ValueError.
    """
    path = Path(path)
    ext = path.suffix.lower()
    data = _as_frames_channels(data)
    if ext in SOUNDFILE_FORMATS and codec is None:
        fmt, default_subtype = SOUNDFILE_FORMATS[ext]
        sf.write(str(path), data, sample_rate, format=fmt, subtype=subtype or default_subtype)
        return path
    if ext in AV_AUDIO_FORMATS:
        container, default_codec, _ = AV_AUDIO_FORMATS[ext]
        return write_av_audio(path, data, sample_rate, codec=codec or default_codec, container_format=container)
    raise ValueError(f"no writer for {ext!r} files")


def _encode_audio(container, stream, data: np.ndarray, sample_rate: int, av) -> None:
    """Feed `data` ([frames, channels] float) to an opened PyAV audio `stream`, then flush it."""
    fmt = stream.codec_context.format.name
    frame_size = stream.codec_context.frame_size or 1024
    channels = data.shape[1]
    layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, f"{channels}c")
    clipped = np.clip(data, -1.0, 1.0)
    if fmt.startswith("s16"):
        samples = np.round(clipped * 32767).astype(np.int16)
    elif fmt.startswith("s32"):
        samples = np.round(clipped * 2147483520).astype(np.int32)
    elif fmt.startswith("dbl"):
        samples = clipped.astype(np.float64)
    else:
        samples = clipped.astype(np.float32)
    pts = 0
    for start in range(0, len(samples), frame_size):
        chunk = samples[start : start + frame_size]
        arr = np.ascontiguousarray(chunk.T) if fmt.endswith("p") else chunk.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = pts
        frame.time_base = Fraction(1, sample_rate)
        pts += len(chunk)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _add_audio_stream(container, codec: str, sample_rate: int, channels: int):
    stream = container.add_stream(codec, rate=sample_rate)
    layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, f"{channels}c")
    stream.codec_context.layout = layout
    supported = [f.name for f in (stream.codec_context.codec.audio_formats or ())]
    for preferred in ("fltp", "flt", "s16", "s16p", "s32", "s32p"):
        if not supported or preferred in supported:
            stream.codec_context.format = preferred
            break
    if codec in ("aac", "wmav1", "wmav2", "ac3", "mp2"):
        stream.codec_context.bit_rate = 64_000 * channels
    return stream


def write_av_audio(
    path: str | os.PathLike[str],
    data: np.ndarray,
    sample_rate: int,
    *,
    codec: str,
    container_format: str | None = None,
) -> Path:
    """Encode `data` ([frames] or [frames, channels] float in [-1, 1]) with FFmpeg's `codec` into
    `path` (container guessed from the extension unless `container_format` names it)."""
    import av

    path = Path(path)
    data = _as_frames_channels(data)
    if codec in ("libopus", "opus") and sample_rate not in _OPUS_RATES:
        raise ValueError(f"opus cannot encode {sample_rate} Hz; use one of {_OPUS_RATES}")
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = _add_audio_stream(container, codec, sample_rate, data.shape[1])
        _encode_audio(container, stream, data, sample_rate, av)
    return path


def make_audio_file(
    path: str | os.PathLike[str],
    *,
    seconds: float = 0.5,
    sample_rate: int = 32_000,
    channels: int = 1,
    kind: str = "sine",
    subtype: str | None = None,
    codec: str | None = None,
    seed: int = 0,
) -> Path:
    """Synthesise `kind` ("sine", "noise", "silence") and write it to `path` (format from the extension)."""
    data = signal(kind, seconds, sample_rate, channels, seed=seed)
    return write_audio(path, data, sample_rate, subtype=subtype, codec=codec)


def make_video_file(
    path: str | os.PathLike[str],
    *,
    seconds: float = 0.5,
    with_audio: bool = True,
    sample_rate: int = 48_000,
    channels: int = 2,
    audio_codec: str | None = None,
    video_codec: str | None = None,
    container_format: str | None = None,
    seed: int = 0,
) -> Path:
    """A tiny video (64x48 black frames at 10 fps) with, unless `with_audio` is false, a sine audio
    track; mp4/mov/mkv/webm by extension. The video codec is libx264 when available, else mpeg4
    (vp8 for webm); the audio codec is aac (opus for webm)."""
    import av

    path = Path(path)
    webm = path.suffix.lower() == ".webm" or container_format == "webm"
    if video_codec is None:
        if webm:
            video_codec = "libvpx"
        else:
            video_codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    if audio_codec is None:
        audio_codec = "libopus" if webm else "aac"
    fps = 10
    n_video = max(int(round(seconds * fps)), 1)
    with av.open(str(path), mode="w", format=container_format) as container:
        vstream = container.add_stream(video_codec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = _add_audio_stream(container, audio_codec, sample_rate, channels) if with_audio else None
        black = np.zeros((48, 64, 3), dtype=np.uint8)
        for i in range(n_video):
            frame = av.VideoFrame.from_ndarray(black, format="rgb24")
            frame.pts = i
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode(None):
            container.mux(packet)
        if astream is not None:
            data = sine(seconds, sample_rate, channels, seed=seed)
            _encode_audio(container, astream, data, sample_rate, av)
    return path


# --------------------------------------------------------------------------- broken files


def random_bytes_file(path: str | os.PathLike[str], n_bytes: int = 4096, *, seed: int = 0) -> Path:
    """`n_bytes` of random bytes (never a valid audio file in practice)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes())
    return path


def truncate_file(path: str | os.PathLike[str], keep: float | int) -> Path:
    """Cut `path` in place: keep the first `keep` bytes (int) or that fraction of its size (float)."""
    path = Path(path)
    data = path.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path.write_bytes(data[:n])
    return path


def tone(path: Path, *, freq: float, seconds: float, rate: int = 32_000, noise: float = 0.0, seed: int = 0) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t) + noise * np.random.default_rng(seed).standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), rate)
    return path
