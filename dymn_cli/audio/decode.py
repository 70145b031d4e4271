"""Audio in: decode any audio (or video) input to float32 mono at 32 kHz, whole or streamed.

The published models were trained and evaluated on waveforms loaded with
``librosa.load(path, sr=32000, mono=True)``, so for everything libsndfile reads this module gives the
very same numbers, step for step:

1. decode with soundfile as float32 (`[frames, channels]`, libsndfile's own int -> float scaling);
2. mono = ``np.mean(x, axis=1)`` on that C-ordered float32 array (bit-identical to librosa's
   ``to_mono``, which averages the transposed view);
3. ``soxr.resample(mono, sr, 32000, quality="HQ")`` (librosa's default ``res_type="soxr_hq"``),
   skipped when the rates are equal, then zero-padded (or cut) to ``ceil(n * 32000 / sr)`` samples
   like ``librosa.resample(..., fix=True)``: soxr rounds the output length, librosa pads the last
   sample (at most one) with a zero.

What libsndfile cannot read (m4a/aac, wma, ac3, wavpack, opus in webm/mkv, the audio track of
mp4/mkv/webm/mov/avi videos, ...) is decoded with PyAV (FFmpeg): the first audio stream, each frame
converted to float32 in numpy (ints scaled like libsndfile does), channels averaged the same way and
resampled with soxr, never with FFmpeg's resampler. (librosa would go through audioread and an
FFmpeg subprocess there, which does not give reproducible numbers anyway.) For mp4/mov/m4a files the
decoded audio is cut to the track duration the container states, which drops the AAC encoder's end
padding; the start padding is removed by FFmpeg itself.

Streaming (`stream_audio`) decodes block by block and resamples with ``soxr.ResampleStream``; the
concatenated blocks are bit-identical to `load_audio` (libsoxr's output does not depend on how the
input is chunked; the tests check this for every supported rate).

Truncated or damaged inputs: users prefer the labels of the intact part, so whatever decodes is
used and an `AudioDecodeWarning` says what was lost. libsndfile stops at its first decoding error
(everything before it is kept); with PyAV a packet that fails to decode is skipped and decoding
goes on, as the ffmpeg command does. If nothing at all decodes, `AudioError` is raised. Some
truncations are invisible to the decoders and pass silently (a WAV whose header promises more
frames than the file holds is read up to the end of its data; an MP3 simply ends early).

Every problem with an input raises `dymn_cli.errors.AudioError` with a one-line message that starts
with the file name (``<stdin>``, ``<bytes>`` or ``<array>`` for in-memory inputs).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import soundfile as sf

from dymn_cli.audio.backend import AudioInfo, DecodeStopped, check_source_rate
from dymn_cli.audio.pyav_backend import PyAVDecoder, ffmpeg_message, import_av
from dymn_cli.audio.samples import StreamResampler, check_rate, mix_to_mono, resample, to_float32, to_numpy
from dymn_cli.audio.soundfile_backend import SoundfileDecoder
from dymn_cli.audio.sources import (
    MAX_STREAM_BUFFER,
    AudioSource,
    Deadline,
    ResolvedSource,
    one_line,
    read_stream,
    resolve_source,
)
from dymn_cli.errors import AudioError, UsageError
from dymn_cli.wording import counted

__all__ = [
    "MAX_STREAM_BUFFER",
    "SAMPLE_RATE",
    "AudioInfo",
    "AudioSource",
    "AudioDecodeWarning",
    "Deadline",
    "audio_info",
    "load_audio",
    "prepare_waveform",
    "read_stream",
    "stream_audio",
]

SAMPLE_RATE = 32_000
"""The rate every published checkpoint expects."""

MAX_CHANNELS = 64
"""`prepare_waveform` refuses 2-D arrays whose smaller side is larger (most likely a batch, not channels)."""

MAX_READ_SAMPLES = 1 << 23
"""`stream_audio` reads at most this many samples (all channels) at a time, 32 MiB of float32, whatever
sample rate and channel count a (possibly corrupt) header claims: a 19 kB WAV whose header says
16.7 MHz would otherwise ask for a 4 GB block. The output does not depend on the read size."""


class AudioDecodeWarning(UserWarning):
    """Part of a (truncated or damaged) input could not be decoded; the rest is used."""


# --------------------------------------------------------------------------- public functions


def load_audio(
    source: AudioSource, *, sample_rate: int = SAMPLE_RATE, name: str | None = None, deadline: Deadline | None = None
) -> np.ndarray:
    """Decode `source` whole to a 1-D float32 mono waveform at `sample_rate`.

    `source` is a path, the bytes of a file, or a binary file object; a non-seekable one (a pipe,
    ``sys.stdin.buffer``) is read into memory first, a file object is read from its current
    position. `name` replaces the source's own name in messages (e.g. ``"<stdin>"`` for bytes read
    from standard input). Raises `AudioError` for anything wrong with the input (see the module
    docstring); warns `AudioDecodeWarning` when only part of it decodes.
    """
    sample_rate = check_rate(sample_rate, "sample_rate")
    inp = resolve_source(source, name, deadline)
    try:
        decoder = _open_decoder(inp)
        try:
            parts = []
            for block in _checked_blocks(decoder, inp, 1 << 18, deadline):  # a loop, not a comprehension: warning stacklevel
                parts.append(mix_to_mono(block, inp.name))
        finally:
            decoder.close()
    finally:
        inp.close()
    mono = np.concatenate(parts) if len(parts) != 1 else parts[0]
    return resample(mono, decoder.sample_rate, sample_rate)


def stream_audio(
    source: AudioSource,
    *,
    sample_rate: int = SAMPLE_RATE,
    block_seconds: float = 30.0,
    name: str | None = None,
    deadline: Deadline | None = None,
) -> Iterator[np.ndarray]:
    """Decode `source` in bounded memory: yield consecutive 1-D float32 mono blocks at `sample_rate`.

    Every block has exactly ``round(block_seconds * sample_rate)`` samples except the last, which is
    shorter (never empty). Their concatenation equals ``load_audio(source, sample_rate=...)`` bit for
    bit. The input is opened (and problems found at open time raised) when this function is called;
    decoding problems later on raise `AudioError` from the iteration. Memory stays around one block
    of decoded input plus one block of output; a stream (a non-seekable file object, a FIFO, a
    device) is read into memory up to `MAX_STREAM_BUFFER` bytes, and decoded as it comes beyond that.
    With a `deadline`, decoding raises `TimedOut` once it has passed (checked between blocks and
    while a stream is waited for).
    """
    sample_rate = check_rate(sample_rate, "sample_rate")
    if not (isinstance(block_seconds, (int, float)) and math.isfinite(block_seconds) and block_seconds > 0):
        raise UsageError(f"block_seconds must be a positive number of seconds, got {block_seconds!r}")
    block_out = max(int(round(block_seconds * sample_rate)), 1)
    inp = resolve_source(source, name, deadline)
    try:
        decoder = _open_decoder(inp)
    except BaseException:
        inp.close()
        raise
    return _stream_blocks(inp, decoder, sample_rate, block_seconds, block_out, deadline)


def audio_info(source: AudioSource, *, name: str | None = None) -> AudioInfo:
    """Duration, rate, channels, frame count and format of `source`, from the container's header
    where it has one (decoding only where the container does not state a length)."""
    inp = resolve_source(source, name)
    try:
        decoder = _open_decoder(inp)
        try:
            return decoder.info(inp)
        finally:
            decoder.close()
    finally:
        inp.close()


def prepare_waveform(array: Any, *, source_rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Turn an in-memory waveform (numpy array, torch tensor or nested list) into 1-D float32 mono
    at `sample_rate`, the same way `load_audio` treats a decoded file.

    Layout: 1-D is mono. 2-D is `[channels, samples]` or `[samples, channels]`: **the smaller
    dimension is the channel axis** (a square array is taken as channels-first); a smaller side
    above `MAX_CHANNELS` is refused as ambiguous. Leading size-1 axes (``[1, C, N]``) are dropped.
    Dtypes: floats are cast to float32; signed ints are scaled by ``2**(bits-1)`` (int16 / 32768),
    unsigned ints are centred first (uint8: (x - 128) / 128), as in PCM files; bool and complex are
    refused. Channels are averaged and the result resampled exactly as for files.
    """
    name = "<array>"
    source_rate = check_rate(source_rate, "source_rate")
    sample_rate = check_rate(sample_rate, "sample_rate")
    x = to_numpy(array, name)
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim == 2:
        if x.shape[0] <= x.shape[1]:
            x = x.T  # channels-first -> [samples, channels]
        if x.shape[1] > MAX_CHANNELS:
            raise AudioError(
                f"{name}: cannot tell channels from samples in an array of shape {tuple(x.shape[::-1])} "
                f"(more than {MAX_CHANNELS} channels; pass one waveform at a time)"
            )
    else:
        raise AudioError(f"{name}: expected a 1-D or 2-D waveform, got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise AudioError(f"{name}: contains no audio samples")
    frames = to_float32(x, name)
    mono = mix_to_mono(frames, name)
    return resample(mono, source_rate, sample_rate)


_Decoder = SoundfileDecoder | PyAVDecoder


def _open_decoder(inp: ResolvedSource) -> _Decoder:
    """libsndfile first (exact librosa parity), PyAV for whatever it does not recognise (and for a
    long stream, which libsndfile cannot read without seeking). The stated sample rate is checked."""
    decoder = _open_either_decoder(inp)
    if decoder.backend == "pyav" and not decoder.sample_rate:
        return decoder  # FFmpeg learns some streams' rate from their first frame: checked there
    try:
        check_source_rate(decoder.sample_rate, inp.name)
    except AudioError:
        decoder.close()
        raise
    return decoder


def _open_either_decoder(inp: ResolvedSource) -> _Decoder:
    if inp.streaming:
        return _open_pyav(inp, "a stream this long is decoded as it comes")
    try:
        return SoundfileDecoder(inp)
    except (sf.LibsndfileError, RuntimeError) as exc:
        sf_reason = one_line(exc)
    except TypeError as exc:  # soundfile takes a ".raw" name for header-less PCM and wants a rate
        sf_reason = one_line(exc)
    except OSError as exc:  # e.g. the file vanished between the checks and the open
        raise AudioError(f"{inp.name}: cannot read the file ({one_line(exc.strerror or exc)})") from None
    inp.rewind()
    return _open_pyav(inp, sf_reason)


def _open_pyav(inp: ResolvedSource, sf_reason: str) -> PyAVDecoder:
    av = import_av()
    try:
        return PyAVDecoder(inp)
    except av.error.FFmpegError as exc:
        av_reason = ffmpeg_message(exc)
    except OSError as exc:
        raise AudioError(f"{inp.name}: cannot read the file ({one_line(exc.strerror or exc)})") from None
    raise AudioError(f"{inp.name}: not a readable audio file ({_describe_failure(sf_reason, av_reason)})")


def _describe_failure(sf_reason: str, av_reason: str) -> str:
    """Plain words for "neither libsndfile nor FFmpeg could open it"."""
    sf_lower = sf_reason.lower()
    if "malformed" in sf_lower or "error in" in sf_lower or "no 'data' chunk" in sf_lower:
        return f"the file is damaged or truncated; libsndfile: {sf_reason.split(': ', 1)[-1]}"
    if "end of file" in av_reason.lower():
        return "the file ends before its first audio data (truncated?)"
    return "unknown format or corrupt data"


def _checked_blocks(
    decoder: _Decoder, inp: ResolvedSource, frames: int, deadline: Deadline | None = None
) -> Iterator[np.ndarray]:
    """Decoded `[frames, channels]` float32 blocks; handles decoding errors and empty results.

    Warnings use stacklevel 3: this generator, then `load_audio` or `_stream_blocks`, then the caller.
    """
    total = 0
    try:
        for block in decoder.blocks(frames):
            if deadline is not None:
                deadline.check(inp.name)
            total += len(block)
            yield block
    except DecodeStopped as exc:
        if total == 0:
            raise AudioError(f"{inp.name}: cannot decode the audio ({exc})") from None
        warnings.warn(
            f"{inp.name}: decoding stopped after {total / decoder.sample_rate:.2f} s ({exc}); using the audio before that point",
            AudioDecodeWarning,
            stacklevel=3,
        )
        return
    if total == 0:
        if decoder.skipped:
            raise AudioError(f"{inp.name}: cannot decode the audio ({decoder.skip_reason})")
        raise AudioError(f"{inp.name}: contains no audio samples")
    if decoder.skipped:
        warnings.warn(
            f"{inp.name}: skipped {counted(decoder.skipped, 'damaged packet')} that could not be decoded ({decoder.skip_reason})",
            AudioDecodeWarning,
            stacklevel=3,
        )


def _stream_blocks(
    inp: ResolvedSource, decoder: _Decoder, sample_rate: int, block_seconds: float, block_out: int, deadline: Deadline | None
) -> Iterator[np.ndarray]:
    try:
        read_frames = max(
            min(int(math.ceil(block_seconds * decoder.sample_rate)), MAX_READ_SAMPLES // max(decoder.channels, 1)), 1
        )
        resampler: StreamResampler | None = None
        pending: list[np.ndarray] = []
        n_pending = 0
        for block in _checked_blocks(decoder, inp, read_frames, deadline):
            mono = mix_to_mono(block, inp.name)
            if resampler is None:  # (the rate is known for sure once the first block is decoded)
                resampler = StreamResampler(decoder.sample_rate, sample_rate)
            out = resampler.feed(mono)
            if len(out):
                pending.append(out)
                n_pending += len(out)
            while n_pending >= block_out:
                buf = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield buf[:block_out]
                rest = buf[block_out:]
                pending = [rest] if len(rest) else []
                n_pending = len(rest)
        tail = resampler.finish() if resampler is not None else np.zeros(0, dtype=np.float32)
        if len(tail):
            pending.append(tail)
        if pending:
            buf = np.concatenate(pending) if len(pending) > 1 else pending[0]
            for start in range(0, len(buf), block_out):
                yield buf[start : start + block_out]
    finally:
        decoder.close()
        inp.close()
