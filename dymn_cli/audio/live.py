"""Live audio sources, read as the audio arrives: standard input, FIFOs and devices, network URLs, headerless PCM.

Each source yields `Arrival`s (mono float32 blocks at the model's rate, stamped with the moment they
were read) and `SourceGap`s (a network source that dropped and was reopened). Nothing here waits for
more input than the operating system has at hand: headerless PCM is read with one `os.read` at a time
(whatever the pipe holds, up to 64 KiB), containers go through PyAV fed the same way, so a block is
handed on as soon as it is decoded.

Containers on a pipe (WAV with `arecord`'s unknown length, FLAC, Ogg, MP3, ADTS AAC, Matroska, MPEG-TS
...) are decoded by PyAV, which reads them without seeking; libsndfile would need to seek. Network URLs
(`http(s)`, `rtsp`, `rtmp`, `srt`, `udp`, ...) are opened by FFmpeg itself. A network source that
drops is reopened with a growing pause (0.5 s, doubled up to 30 s) until `reconnect` seconds pass
without success; stream time continues across the gap. A file with a known length that has been read
to its end has ended, and is not reopened.

Torch-free: this is the audio layer.
"""

from __future__ import annotations

import io
import logging
import os
import select
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Union

import numpy as np

from dymn_cli.audio.decode import SAMPLE_RATE
from dymn_cli.audio.pyav_backend import ffmpeg_message, frame_to_array, import_av
from dymn_cli.audio.samples import StreamResampler, mix_to_mono
from dymn_cli.errors import AudioError, UsageError

__all__ = [
    "NETWORK_SCHEMES",
    "PCM_ENCODINGS",
    "Arrival",
    "LiveSource",
    "PcmFormat",
    "SourceGap",
    "is_network_url",
]

log = logging.getLogger("dymn_cli")

NETWORK_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "srt", "udp", "tcp", "rtp", "mms", "mmsh")

READ_BYTES = 1 << 16
"""Most bytes one read takes: a full pipe buffer (about 1 s of 16-bit mono at 32 kHz)."""

POLL_SECONDS = 0.2
"""How often a blocked read looks whether the stream was asked to stop."""

FIRST_PAUSE, LONGEST_PAUSE = 0.5, 30.0
"""Reconnection pauses: the first, doubled after each failed attempt up to the longest."""

NETWORK_TIMEOUT = 10.0
"""Seconds without data after which FFmpeg gives up on a connection (and it is reopened)."""

# encoding -> (numpy dtype of one sample, bytes per sample); s24 is unpacked by hand
PCM_ENCODINGS: dict[str, tuple[str, int]] = {
    "u8": ("u1", 1), "s8": ("i1", 1),
    "s16le": ("<i2", 2), "s16be": (">i2", 2),
    "s24le": ("<i4", 3), "s24be": (">i4", 3),
    "s32le": ("<i4", 4), "s32be": (">i4", 4),
    "f32le": ("<f4", 4), "f32be": (">f4", 4),
    "f64le": ("<f8", 8), "f64be": (">f8", 8),
}  # fmt: skip


def is_network_url(target: str) -> bool:
    """Whether `target` is a URL that FFmpeg opens over the network (`http://...`, `rtsp://...`)."""
    scheme, sep, _ = target.partition("://")
    return bool(sep) and scheme.lower() in NETWORK_SCHEMES


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
        if not (1 <= rate <= 1_000_000 and 1 <= channels <= 64):
            raise UsageError(f"--pcm {text}: the rate must be 1 to 1000000 Hz and the channels 1 to 64")
        return cls(parts[0], rate, channels)

    @property
    def frame_bytes(self) -> int:
        return PCM_ENCODINGS[self.encoding][1] * self.channels

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


@dataclass(frozen=True)
class Arrival:
    """Samples at the model's rate as they arrived: when they were read (`time.monotonic()`, and the
    wall clock `time.time()`)."""

    samples: np.ndarray
    monotonic: float
    wall: float


@dataclass(frozen=True)
class SourceGap:
    """A network source went silent at wall time `lost` and delivered again at `resumed`."""

    lost: float
    resumed: float
    reason: str


LiveTarget = Union[str, "os.PathLike[str]", BinaryIO, int]
"""`-` (standard input), a path (FIFO, device, file), a network URL, a file descriptor or a binary file object."""


class LiveSource:
    """One live input: where it comes from, how to read it and what it is called in records."""

    def __init__(
        self,
        target: LiveTarget,
        *,
        name: str | None = None,
        pcm: PcmFormat | str | None = None,
        reconnect: float = 300.0,
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        self.target = target
        self.name = name or _describe(target)
        self.pcm = PcmFormat.parse(pcm) if isinstance(pcm, str) else pcm
        if not reconnect >= 0:
            raise UsageError(f"reconnect must be at least 0 seconds, got {reconnect}")
        self.reconnect = reconnect
        self.sample_rate = sample_rate
        self.network = isinstance(target, str) and is_network_url(target)

    def arrivals(self, stop: threading.Event) -> Iterator[Arrival | SourceGap]:
        """Read until the stream ends (or `stop` is set); raises `AudioError` if it cannot be read."""
        if self.network:
            yield from self._network(stop)
            return
        reader = _open_local(self.target, self.name, stop)
        try:
            if self.pcm is not None:
                yield from self._pcm(reader)
            else:
                decoded, _ = yield from self._container(reader, stop)
                if decoded == 0:
                    raise AudioError(f"{self.name}: the stream ended before any audio")
        finally:
            reader.close()

    # ------------------------------------------------------------------ headerless PCM

    def _pcm(self, reader: _LiveReader) -> Iterator[Arrival]:
        assert self.pcm is not None
        pcm, frame_bytes = self.pcm, self.pcm.frame_bytes
        resampler = StreamResampler(pcm.sample_rate, self.sample_rate)
        rest = b""
        while True:
            data = reader.read(READ_BYTES)
            if not data:
                break
            data = rest + data
            whole = len(data) - len(data) % frame_bytes
            rest = data[whole:]
            if whole:
                mono = mix_to_mono(pcm.to_frames(data[:whole]), self.name)
                out = resampler.feed(mono)
                if len(out):
                    yield Arrival(out, time.monotonic(), time.time())
        if rest:
            log.warning("%s: the stream ended inside a frame: its last %d byte(s) were dropped", self.name, len(rest))
        tail = resampler.finish()
        if len(tail):
            yield Arrival(tail, time.monotonic(), time.time())

    # ------------------------------------------------------------------ containers, through PyAV

    def _container(self, opened: Any, stop: threading.Event) -> Iterator[Arrival | tuple[int, bool]]:
        """Decode one opened stream to its end. Returns (samples decoded, whether it ended cleanly)."""
        av = import_av()
        options = {"rw_timeout": str(int(NETWORK_TIMEOUT * 1e6))} if self.network else {}
        raw = None
        if self.pcm is not None:  # (headerless PCM from a URL: FFmpeg's raw demuxers have the same names)
            raw = self.pcm.encoding
            options.update(sample_rate=str(self.pcm.sample_rate), ch_layout=f"{self.pcm.channels}c")
        try:
            container = av.open(
                opened,
                mode="r",
                format=raw,
                options=options,
                timeout=NETWORK_TIMEOUT if self.network else None,
                metadata_errors="replace",
            )
        except av.error.FFmpegError as error:
            raise AudioError(f"{self.name}: cannot open the stream ({ffmpeg_message(error)})") from None
        try:
            if not container.streams.audio:
                raise AudioError(f"{self.name}: no audio stream")
            stream = container.streams.audio[0]
            resampler: StreamResampler | None = None
            decoded = 0
            skipped = 0
            errors_in_a_row = 0
            clean = True
            demux = container.demux(stream)
            while not (self.network and stop.is_set()):  # (a local stream ends at its reader's next read)
                try:
                    packet = next(demux)
                except StopIteration:
                    break
                except (av.error.FFmpegError, OSError) as error:
                    errors_in_a_row += 1
                    if self.network or errors_in_a_row > 50:  # (a pipe cannot be re-read: try to resync first)
                        clean = False
                        log.warning("%s: the stream broke off (%s)", self.name, ffmpeg_message(error))
                        break
                    continue
                errors_in_a_row = 0
                try:
                    frames = packet.decode()
                except (av.error.FFmpegError, ValueError) as error:
                    skipped += 1
                    if skipped == 1 or skipped % 100 == 0:
                        log.warning(
                            "%s: skipped a damaged packet (%s; %d skipped so far)", self.name, ffmpeg_message(error), skipped
                        )
                    continue
                for frame in frames:
                    if resampler is None or frame.sample_rate != resampler.in_rate:
                        if resampler is not None:  # a new rate mid-stream (a new broadcast segment): start over
                            tail = resampler.finish()
                            if len(tail):
                                yield Arrival(tail, time.monotonic(), time.time())
                        resampler = StreamResampler(frame.sample_rate, self.sample_rate)
                    out = resampler.feed(mix_to_mono(frame_to_array(frame), self.name))
                    decoded += len(out)
                    if len(out):
                        yield Arrival(out, time.monotonic(), time.time())
            if resampler is not None:
                tail = resampler.finish()
                decoded += len(tail)
                if len(tail):
                    yield Arrival(tail, time.monotonic(), time.time())
            if clean and self.network:  # a network stream of a known length read to its end (give or take a guess) has ended
                expected = (container.duration or 0) / 1e6 * self.sample_rate
                clean = expected > 0 and decoded >= 0.98 * expected - self.sample_rate
            return decoded, clean
        finally:
            container.close()

    # ------------------------------------------------------------------ network

    def _network(self, stop: threading.Event) -> Iterator[Arrival | SourceGap]:
        assert isinstance(self.target, str)
        lost: float | None = None  # wall time the stream dropped, until audio comes again
        reason = ""  # why it dropped
        pause = FIRST_PAUSE
        opened = False
        while not stop.is_set():
            got_audio = False
            try:
                attempt = self._container(self.target, stop)
                while True:
                    try:
                        item = next(attempt)
                    except StopIteration as done:
                        decoded, clean = done.value
                        break
                    if not got_audio:
                        got_audio = opened = True
                        if lost is not None:
                            gap = SourceGap(lost, time.time(), reason)
                            log.warning(
                                "%s: no audio for %.1f s (%s); reconnected, stream time goes on",
                                self.name,
                                gap.resumed - gap.lost,
                                reason,
                            )
                            yield gap
                            lost, pause = None, FIRST_PAUSE
                    yield item
                if clean and decoded:
                    return
                reason = "the connection closed" if decoded else "no audio came"
            except AudioError as error:
                if not opened:  # (a URL that never worked fails at once)
                    raise
                reason = str(error).removeprefix(f"{self.name}: ")
            if not opened:
                raise AudioError(f"{self.name}: the stream ended before any audio")
            if lost is None:
                lost = time.time()
                if self.reconnect == 0:
                    log.warning("%s: the stream dropped (%s)", self.name, reason)
                    return
                log.warning("%s: the stream dropped (%s); reconnecting", self.name, reason)
            if time.time() - lost >= self.reconnect:
                raise AudioError(
                    f"{self.name}: the stream dropped and could not be reopened within {self.reconnect:g} s ({reason})"
                )
            stop.wait(pause)
            pause = min(pause * 2, LONGEST_PAUSE)


# ---------------------------------------------------------------------- local streams


class _LiveReader(io.RawIOBase):
    """A file descriptor read as it fills: `read(n)` returns what is there (at least one byte, or b''
    at the end), and b'' once `stop` is set, so that FFmpeg and the PCM reader see the stream end."""

    def __init__(self, fd: int, name: str, stop: threading.Event, *, owned: bool) -> None:
        super().__init__()
        self.fd, self.name, self._stop, self._owned = fd, name, stop, owned
        self._pollable = True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        size = READ_BYTES if size is None or size < 0 else size
        while not self._stop.is_set():
            if self._pollable:
                try:
                    ready, _, _ = select.select([self.fd], [], [], POLL_SECONDS)
                except (OSError, ValueError):  # (a descriptor select cannot watch: read and block)
                    self._pollable = False
                    continue
                if not ready:
                    continue
            try:
                return os.read(self.fd, size)
            except BlockingIOError:
                continue
            except OSError as error:
                raise AudioError(f"{self.name}: cannot read the stream ({error.strerror or error})") from None
        return b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._owned and not self.closed:
            os.close(self.fd)
        super().close()


def _open_local(target: LiveTarget, name: str, stop: threading.Event) -> _LiveReader:
    if isinstance(target, int):
        return _LiveReader(target, name, stop, owned=False)
    if isinstance(target, (str, os.PathLike)):
        path = os.fspath(target)
        if path == "-":
            return _LiveReader(sys.stdin.buffer.fileno(), name, stop, owned=False)
        try:
            if stat.S_ISDIR(os.stat(path).st_mode):
                raise AudioError(f"{name}: is a directory, not a stream")
            fd = os.open(path, os.O_RDONLY)  # (a FIFO waits here for its writer)
        except FileNotFoundError:
            raise AudioError(f"{name}: file not found") from None
        except PermissionError:
            raise AudioError(f"{name}: permission denied") from None
        except OSError as error:
            raise AudioError(f"{name}: cannot open the stream ({error.strerror or error})") from None
        return _LiveReader(fd, name, stop, owned=True)
    if hasattr(target, "fileno"):
        try:
            return _LiveReader(target.fileno(), name, stop, owned=False)
        except (OSError, io.UnsupportedOperation):
            pass
    raise UsageError(f"{name}: a live source is '-', a path, a URL or a file object with a file descriptor")


def _describe(target: LiveTarget) -> str:
    if isinstance(target, (str, os.PathLike)):
        return os.fspath(target)
    if isinstance(target, int):
        return f"<fd {target}>"
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else "<stream>"
