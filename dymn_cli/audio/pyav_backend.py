"""The FFmpeg backend (PyAV), for what libsndfile cannot read: the first audio stream, converted to
float32 in numpy (never FFmpeg's resampler); mp4/mov audio cut to the track duration the container states."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dymn_cli.audio.backend import AudioInfo, DecodeStopped, check_source_rate
from dymn_cli.audio.sources import ResolvedSource, one_line
from dymn_cli.errors import AudioError


def ffmpeg_message(exc: BaseException) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), without errno and call site."""
    reason = one_line(getattr(exc, "strerror", None) or exc)
    if reason.startswith("Error number"):  # a decoder-private code FFmpeg has no text for
        return "the decoder rejected the data"
    return reason


def import_av() -> Any:
    import av  # slow-ish to import: only when libsndfile cannot read the input

    return av


_INT_SCALE = {"u8": 2.0**-7, "s16": 2.0**-15, "s32": 2.0**-31, "s64": 2.0**-63}


def frame_to_array(frame: Any) -> np.ndarray:
    """A PyAV AudioFrame -> C-ordered float32 `[samples, channels]` (like soundfile gives)."""
    arr = frame.to_ndarray()
    fmt = frame.format.name.rstrip("p")
    if frame.format.is_planar:
        arr = arr.T
    else:
        arr = arr.reshape(-1, frame.layout.nb_channels)
    if fmt == "flt":
        return np.ascontiguousarray(arr, dtype=np.float32)
    if fmt == "dbl":
        return np.ascontiguousarray(arr.astype(np.float32))
    scale = _INT_SCALE.get(fmt)
    if scale is None:
        raise DecodeStopped(f"unsupported sample format {frame.format.name!r}")
    if fmt == "u8":
        out = (arr.astype(np.float32) - np.float32(128.0)) * np.float32(scale)
    elif fmt in ("s32", "s64"):
        out = (arr.astype(np.float64) * scale).astype(np.float32)
    else:
        out = arr.astype(np.float32) * np.float32(scale)
    return np.ascontiguousarray(out)


class PyAVDecoder:
    backend = "pyav"
    skipped = 0
    """Packets that failed to decode and were skipped."""
    skip_reason = ""

    def __init__(self, inp: ResolvedSource):
        av = self._av = import_av()
        # A Python file object, never the path itself: FFmpeg would read "name:with:colons" or
        # "concat:..." as a protocol URL.
        self._fh = inp.fileobj if inp.fileobj is not None else open(inp.path, "rb")  # noqa: SIM115
        self._own_fh = inp.fileobj is None
        self._name = inp.name
        try:
            self._container = av.open(self._fh, mode="r", metadata_errors="replace")
        except BaseException:
            self._close_fh()
            raise
        try:
            streams = self._container.streams.audio
            if not streams:
                what = " (a video without sound)" if self._container.streams.video else ""
                raise AudioError(f"{inp.name}: no audio stream{what}")
            self._stream = streams[0]
            ctx = self._stream.codec_context
            if ctx is None:  # FFmpeg knows the container but has no decoder for this codec (or tag)
                raise AudioError(f"{inp.name}: not a readable audio file (no decoder for its audio codec)")
            self.sample_rate: int = ctx.sample_rate
            self.channels: int = ctx.channels
            self._limit = self._declared_frames() if self._trims_to_duration() else None
        except BaseException:
            self.close()
            raise

    def _trims_to_duration(self) -> bool:
        # mp4/mov state the exact track length (edit list); decoding gives whole AAC frames
        return "mp4" in self._container.format.name.split(",")

    def _declared_frames(self) -> int | None:
        s = self._stream
        if s.duration and s.time_base and self.sample_rate:
            return int(round(float(s.duration * s.time_base) * self.sample_rate))
        return None

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        av = self._av
        rate = None
        remaining = self._limit
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError) as exc:  # the container itself is unreadable from here
                raise DecodeStopped(ffmpeg_message(exc)) from None
            try:
                decoded = packet.decode()
            except (av.error.FFmpegError, OSError) as exc:  # one damaged packet: skip it, like ffmpeg
                self.skipped += 1
                self.skip_reason = ffmpeg_message(exc)
                continue
            for frame in decoded:
                if rate is None:
                    rate = frame.sample_rate
                    check_source_rate(rate, self._name)
                    if rate != self.sample_rate:  # e.g. HE-AAC, whose header gives the core rate
                        if remaining is not None:
                            remaining = int(round(remaining * rate / self.sample_rate))
                        self.sample_rate = rate
                elif frame.sample_rate != rate:
                    raise DecodeStopped(f"the sample rate changes mid-stream ({rate} -> {frame.sample_rate} Hz)")
                block = frame_to_array(frame)
                if remaining is not None:
                    block = block[:remaining]
                    remaining -= len(block)
                if len(block):
                    yield block
                if remaining == 0:
                    return

    def info(self, inp: ResolvedSource) -> AudioInfo:
        frames = self._declared_frames()
        if frames is None and self._container.duration and self.sample_rate:
            frames = int(round(self._container.duration / 1_000_000 * self.sample_rate))
        if frames is None:  # the container does not say: count by decoding
            try:
                frames = sum(len(b) for b in self.blocks(1 << 16))
            except DecodeStopped:
                frames = 0
        rate = self.sample_rate
        return AudioInfo(
            duration_seconds=frames / rate if rate else 0.0,
            sample_rate=rate,
            channels=self.channels,
            frames=frames,
            format=self._container.format.name,
            codec=self._stream.codec_context.name,
            decoder=self.backend,
        )

    def _close_fh(self) -> None:
        if self._own_fh:
            self._fh.close()

    def close(self) -> None:
        try:
            self._container.close()
        finally:
            self._close_fh()
