"""Live audio sources, read as the audio arrives: standard input, FIFOs and devices, network URLs, headerless PCM.

Each source yields `Arrival`s (mono float32 blocks at the model's rate, stamped with the moment they
were read) and `SourceGap`s (a network source that dropped and was reopened, or a block of NaN or
infinite samples left out). Memory per source is bounded whatever the declared rate: one read takes at
most 64 KiB and at most one second of audio. Nothing here waits for
more input than the operating system has at hand: headerless PCM is read with one `os.read` at a time
(whatever the pipe holds, up to 64 KiB), containers go through PyAV fed the same way, so a block is
handed on as soon as it is decoded.

Containers on a pipe (WAV with `arecord`'s unknown length, FLAC, Ogg, MP3, ADTS AAC, Matroska, MPEG-TS
...) are decoded by PyAV, which reads them without seeking; libsndfile would need to seek. Network URLs
(`http(s)`, `rtsp`, `rtmp`, `srt`, `udp`, ...) are opened by FFmpeg itself. A network source that
drops is reopened with a growing pause (0.5 s, doubled up to 30 s) until `reconnect` seconds pass
without success; stream time continues across the gap. A file with a known length that has been read
to its end has ended, and is not reopened.

Torch-free: this is the audio layer. Headerless PCM is `dymn_cli.audio.pcm`; local streams are read
by `dymn_cli.audio.live_reader`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dymn_cli.audio.backend import MAX_SOURCE_RATE, MIN_SOURCE_RATE
from dymn_cli.audio.decode import SAMPLE_RATE
from dymn_cli.audio.live_reader import READ_BYTES, LiveReader, LiveTarget, describe_target, open_local
from dymn_cli.audio.pcm import PcmFormat
from dymn_cli.audio.pyav_backend import ffmpeg_message, frame_to_array, import_av
from dymn_cli.audio.samples import StreamResampler, mix_to_mono
from dymn_cli.errors import AudioError, UsageError
from dymn_cli.wording import counted

__all__ = ["NETWORK_SCHEMES", "Arrival", "LiveSource", "SourceGap", "is_network_url"]

log = logging.getLogger("dymn_cli")

NETWORK_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "srt", "udp", "tcp", "rtp", "mms", "mmsh")

FIRST_PAUSE, LONGEST_PAUSE = 0.5, 30.0
"""Reconnection pauses: the first, doubled after each failed attempt up to the longest."""

MAX_BAD_BLOCKS = 50
"""Blocks in a row with NaN or infinite samples after which a source is given up (each one alone is a gap)."""

NETWORK_TIMEOUT = 10.0
"""Seconds without data after which FFmpeg gives up on a connection (and it is reopened)."""


def is_network_url(target: str) -> bool:
    """Whether `target` is a URL that FFmpeg opens over the network (`http://...`, `rtsp://...`)."""
    scheme, sep, _ = target.partition("://")
    return bool(sep) and scheme.lower() in NETWORK_SCHEMES


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
        self.name = name or describe_target(target)
        self.pcm = PcmFormat.parse(pcm) if isinstance(pcm, str) else pcm
        if not reconnect >= 0:
            raise UsageError(f"reconnect must be at least 0 seconds, got {reconnect}")
        self.reconnect = reconnect
        self.sample_rate = sample_rate
        self.network = isinstance(target, str) and is_network_url(target)
        self._bad_in_a_row = 0  # blocks with NaN or infinite samples since the last good one

    def arrivals(self, stop: threading.Event) -> Iterator[Arrival | SourceGap]:
        """Read until the stream ends (or `stop` is set); raises `AudioError` if it cannot be read."""
        if self.network:
            yield from self._network(stop)
            return
        reader = open_local(self.target, self.name, stop)
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

    def _pcm(self, reader: LiveReader) -> Iterator[Arrival]:
        assert self.pcm is not None
        pcm, frame_bytes = self.pcm, self.pcm.frame_bytes
        resampler = StreamResampler(pcm.sample_rate, self.sample_rate)
        rest = b""
        read_size = pcm.read_size(READ_BYTES)
        while True:
            data = reader.read(read_size)
            if not data:
                break
            data = rest + data
            whole = len(data) - len(data) % frame_bytes
            rest = data[whole:]
            if whole:
                mono = self._mono_or_gap(pcm.to_frames(data[:whole]), pcm.sample_rate)
                if isinstance(mono, SourceGap):
                    yield mono
                    continue
                out = resampler.feed(mono)
                if len(out):
                    yield Arrival(out, time.monotonic(), time.time())
        if rest:
            log.warning("%s: the stream ended inside a frame: its last %s dropped", self.name, counted(len(rest), "byte"))
        tail = resampler.finish()
        if len(tail):
            yield Arrival(tail, time.monotonic(), time.time())

    def _mono_or_gap(self, frames: np.ndarray, rate: float) -> np.ndarray | SourceGap:
        """A block of frames as mono samples; a block with NaN or infinite samples (a sound card's glitch)
        is left out as a `SourceGap`, and the stream goes on, unless `MAX_BAD_BLOCKS` come in a row."""
        if np.isfinite(frames).all():
            self._bad_in_a_row = 0
            return mix_to_mono(frames, self.name)
        self._bad_in_a_row += 1
        if self._bad_in_a_row >= MAX_BAD_BLOCKS:
            raise AudioError(
                f"{self.name}: {self._bad_in_a_row} blocks in a row held NaN or infinite samples: the source is given up"
            )
        seconds, now = len(frames) / float(rate), time.time()
        reason = f"a block of {seconds:.3f} s held NaN or infinite samples: left out"
        log.warning("%s: %s; the stream goes on", self.name, reason)
        return SourceGap(now - seconds, now, reason)

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
                    if not MIN_SOURCE_RATE <= frame.sample_rate <= MAX_SOURCE_RATE:  # (1 Hz, upsampled: gigabytes)
                        raise AudioError(
                            f"{self.name}: the stream declares {frame.sample_rate} Hz "
                            f"(audio has {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz; damaged, or not audio)"
                        )
                    if resampler is None or frame.sample_rate != resampler.in_rate:
                        if resampler is not None:  # a new rate mid-stream (a new broadcast segment): start over
                            tail = resampler.finish()
                            if len(tail):
                                yield Arrival(tail, time.monotonic(), time.time())
                        resampler = StreamResampler(frame.sample_rate, self.sample_rate)
                    mono = self._mono_or_gap(frame_to_array(frame), frame.sample_rate)
                    if isinstance(mono, SourceGap):
                        yield mono
                        continue
                    out = resampler.feed(mono)
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
