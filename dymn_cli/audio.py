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

import io
import math
import os
import select
import stat
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Union

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, TimedOut, UsageError

__all__ = [
    "AUDIO_EXTENSIONS",
    "SAMPLE_RATE",
    "AudioInfo",
    "AudioSource",
    "AudioDecodeWarning",
    "Deadline",
    "StreamResampler",
    "audio_info",
    "ffmpeg_reason",
    "frame_to_array",
    "is_audio_path",
    "load_audio",
    "mix_to_mono",
    "prepare_waveform",
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

MIN_SOURCE_RATE = 1_000
MAX_SOURCE_RATE = 2_000_000
"""The sample rates (Hz) an input may have. Below 1 kHz nothing of AudioSet's classes is left; above
2 MHz (ultrasound recorders reach 1 MHz) a header is lying: a rate of 0, 1 Hz or 4 GHz fails that input."""

MAX_STREAM_BUFFER = 64 << 20
"""A stream (standard input, a FIFO, a device) is read into memory up to this many bytes: if it ends
there it is decoded like a file (libsndfile first); if not it is decoded as it comes, by FFmpeg, which
needs no seeking. Memory stays bounded however long, or endless, the stream is."""

AudioSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]
"""A path, the bytes of a file, or a binary file object (e.g. ``sys.stdin.buffer``)."""

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        # libsndfile
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
        ".au", ".snd", ".caf", ".w64", ".rf64", ".voc",
        # FFmpeg (PyAV): audio containers and codecs
        ".m4a", ".m4b", ".m4r", ".aac", ".wma", ".mka", ".weba", ".amr", ".awb", ".3ga", ".wv",
        ".ac3", ".eac3", ".dts", ".mp2", ".ape", ".tta", ".mpc", ".spx", ".ra",
        # FFmpeg (PyAV): the audio track of video files
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".3gp", ".3g2", ".wmv", ".asf", ".flv",
        ".mpg", ".mpeg",
    }
)
"""File extensions (lowercase, with the dot) a folder walk should treat as audio. ``.ts`` is left out
on purpose (TypeScript sources far outnumber MPEG transport streams); such files still decode when
named explicitly."""


class AudioDecodeWarning(UserWarning):
    """Part of a (truncated or damaged) input could not be decoded; the rest is used."""


class Deadline:
    """When decoding an input must end: `--file-timeout` seconds after it started.

    Checked between decoded blocks and while waiting for a stream's next bytes, so that a stalled
    FIFO or standard input fails with `TimedOut` instead of hanging the run.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self, name: str) -> None:
        if time.monotonic() >= self.at:
            raise TimedOut(f"{name}: timed out after {self.seconds:g} s")


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


def is_audio_path(path: str | os.PathLike[str]) -> bool:
    """Whether a folder walk should pick up `path`, by its extension (case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in AUDIO_EXTENSIONS


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
    sample_rate = _check_rate(sample_rate, "sample_rate")
    inp = _resolve(source, name, deadline)
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
    return _resample(mono, decoder.sample_rate, sample_rate)


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
    sample_rate = _check_rate(sample_rate, "sample_rate")
    if not (isinstance(block_seconds, (int, float)) and math.isfinite(block_seconds) and block_seconds > 0):
        raise UsageError(f"block_seconds must be a positive number of seconds, got {block_seconds!r}")
    block_out = max(int(round(block_seconds * sample_rate)), 1)
    inp = _resolve(source, name, deadline)
    try:
        decoder = _open_decoder(inp)
    except BaseException:
        inp.close()
        raise
    return _stream_blocks(inp, decoder, sample_rate, block_seconds, block_out, deadline)


def audio_info(source: AudioSource, *, name: str | None = None) -> AudioInfo:
    """Duration, rate, channels, frame count and format of `source`, from the container's header
    where it has one (decoding only where the container does not state a length)."""
    inp = _resolve(source, name)
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
    source_rate = _check_rate(source_rate, "source_rate")
    sample_rate = _check_rate(sample_rate, "sample_rate")
    x = _to_numpy(array, name)
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
    frames = _to_float32(x, name)
    mono = mix_to_mono(frames, name)
    return _resample(mono, source_rate, sample_rate)


# --------------------------------------------------------------------------- inputs


class _Input:
    """A resolved source: a display name plus either a real path or a seekable binary file object."""

    def __init__(
        self, name: str, path: str | None = None, fileobj: Any = None, owned: bool = False, streaming: bool = False
    ):
        self.name = name
        self.path = path
        self.fileobj = fileobj
        self._owned = owned
        self.streaming = streaming  # a stream longer than MAX_STREAM_BUFFER: read once, no seeking

    def rewind(self) -> None:
        if self.fileobj is not None:
            self.fileobj.seek(0)

    def soundfile_target(self) -> bytes | BinaryIO:
        assert self.path is not None or self.fileobj is not None
        # (bytes: soundfile would encode a str strictly, and a name that is not UTF-8 would fail)
        return os.fsencode(self.path) if self.path is not None else self.fileobj  # type: ignore[return-value]

    def close(self) -> None:
        if self._owned and self.fileobj is not None:
            self.fileobj.close()


def _clean(message: object) -> str:
    """One line, no trailing dot: decoder messages sometimes span lines."""
    return " ".join(str(message).split()).rstrip(".")


def ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), without errno and call site."""
    reason = _clean(getattr(exc, "strerror", None) or exc)
    if reason.startswith("Error number"):  # a decoder-private code FFmpeg has no text for
        return "the decoder rejected the data"
    return reason


def _stream_name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    return "<stream>"


def _resolve(source: AudioSource, name: str | None = None, deadline: Deadline | None = None) -> _Input:
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "<bytes>"
        data = bytes(source)
        if not data:
            raise AudioError(f"{name}: empty input (0 bytes)")
        return _Input(name, fileobj=io.BytesIO(data), owned=True)
    if isinstance(source, (str, os.PathLike)):
        return _resolve_path(os.fspath(source), name, deadline)
    if isinstance(source, io.TextIOBase):
        raise AudioError(
            f"{name or _stream_name(source)}: opened in text mode; pass a binary stream (e.g. sys.stdin.buffer)"
        )
    if hasattr(source, "read"):
        return _resolve_fileobj(source, name or _stream_name(source), deadline)
    raise AudioError(f"{name or type(source).__name__}: not a path, bytes or binary file object")


def _resolve_path(path: str | bytes, name: str | None = None, deadline: Deadline | None = None) -> _Input:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    shown = name or path
    try:
        # Never blocks (a FIFO with no writer opens at once); the type is read from what was opened,
        # so a file swapped for a FIFO after a folder walk is still read as a stream.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise AudioError(f"{shown}: file not found") from None
    except PermissionError:
        raise AudioError(f"{shown}: permission denied") from None
    except IsADirectoryError:
        raise AudioError(f"{shown}: is a directory, not an audio file") from None
    except OSError as exc:
        raise AudioError(f"{shown}: cannot open the file ({_clean(exc.strerror or exc)})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise AudioError(f"{shown}: is a directory, not an audio file")
        if not stat.S_ISREG(st.st_mode):
            # a FIFO, a device, /dev/stdin, a process substitution: read as a stream, never whole
            os.set_blocking(fd, True)  # (select() below says when a read would not block)
            with open(fd, "rb", buffering=0, closefd=True) as fh:
                fd = -1
                return _buffer_stream(fh, shown, deadline)
    except OSError as exc:
        raise AudioError(f"{shown}: cannot read the file ({_clean(exc.strerror or exc)})") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if st.st_size == 0:
        raise AudioError(f"{shown}: empty file (0 bytes)")
    return _Input(shown, path=path)


class _StreamReader:
    """Reads a stream that may stall or never end: each read waits at most until the deadline, and
    reads are bounded (FFmpeg asks for 32 kB at a time)."""

    def __init__(self, fh: Any, name: str, deadline: Deadline | None, head: bytes = b"") -> None:
        self._fh = fh
        self.name = name
        self._deadline = deadline
        self._head = head
        try:
            self._fd: int | None = fh.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self._fd = None  # e.g. a BytesIO or a socket-like object: reads as it is

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 20
        if self._head:
            out, self._head = self._head[:size], self._head[size:]
            return out
        self._wait()
        read = getattr(self._fh, "read1", None) or self._fh.read
        try:
            chunk = read(size)
        except OSError as exc:
            raise AudioError(f"{self.name}: cannot read the input ({_clean(exc.strerror or exc)})") from None
        if chunk is None:  # a non-blocking stream with nothing yet
            return self.read(size)
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise AudioError(f"{self.name}: opened in text mode; pass a binary stream (e.g. sys.stdin.buffer)")
        return bytes(chunk)

    def _wait(self) -> None:
        """Until the stream has bytes (or its end) to give, or the deadline passes. Also how a FIFO
        opened before any writer waits for one: until then a read would say "end of file"."""
        if self._fd is None:
            return
        # (read1 on a BufferedReader such as sys.stdin.buffer reads the fd directly once its buffer
        # is empty, so select() sees every byte not yet returned)
        while True:
            wait = None
            if self._deadline is not None:
                self._deadline.check(self.name)
                wait = min(max(self._deadline.remaining(), 0.0), 1.0)
            try:
                ready, _, _ = select.select([self._fd], [], [], wait)
            except (OSError, ValueError):
                return  # not a selectable descriptor: read and block as it does
            if ready:
                return


def _buffer_stream(fh: Any, name: str, deadline: Deadline | None = None) -> _Input:
    """A stream read up to `MAX_STREAM_BUFFER` bytes: decoded from memory if it ends within them,
    else decoded as it comes (the bytes read so far first)."""
    reader = _StreamReader(fh, name, deadline)
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_STREAM_BUFFER:
        chunk = reader.read(1 << 20)
        if not chunk:
            data = b"".join(chunks)
            if not data:
                raise AudioError(f"{name}: empty input (0 bytes)")
            return _Input(name, fileobj=io.BytesIO(data), owned=True)
        chunks.append(chunk)
        size += len(chunk)
    return _Input(name, fileobj=_StreamReader(fh, name, deadline, head=b"".join(chunks)), streaming=True)


def _resolve_fileobj(fh: Any, name: str, deadline: Deadline | None = None) -> _Input:
    try:
        seekable = bool(fh.seekable()) and fh.tell() == 0 and _is_regular(fh)
    except (AttributeError, OSError, ValueError):
        seekable = False
    if not seekable:
        return _buffer_stream(fh, name, deadline)
    try:
        size = fh.seek(0, io.SEEK_END)
        fh.seek(0)
    except OSError as exc:
        raise AudioError(f"{name}: cannot read the input ({_clean(exc.strerror or exc)})") from None
    if size == 0:
        raise AudioError(f"{name}: empty input (0 bytes)")
    return _Input(name, fileobj=fh)


def _is_regular(fh: Any) -> bool:
    """Whether a file object is backed by a regular file (a character device such as /dev/zero says
    it is seekable, and has size 0), or by no file at all (a BytesIO)."""
    try:
        return stat.S_ISREG(os.fstat(fh.fileno()).st_mode)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return True


# --------------------------------------------------------------------------- decoders


class _DecodeStopped(Exception):
    """A decoder error after a successful open that ends decoding."""


try:  # libsndfile's read function itself, see _SoundfileDecoder.blocks
    from soundfile import _ffi as _SF_FFI
    from soundfile import _snd as _SF_LIB
except ImportError:  # pragma: no cover - a future soundfile without these internals
    _SF_FFI = _SF_LIB = None


class _SoundfileDecoder:
    backend = "soundfile"
    skipped = 0
    skip_reason = ""

    def __init__(self, inp: _Input):
        self._file = sf.SoundFile(inp.soundfile_target())
        self.sample_rate: int = self._file.samplerate
        self.channels: int = self._file.channels

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Consecutive `sf_readf_float` calls, exactly the samples of librosa's one-shot read.

        Not `SoundFile.read` in a loop: python-soundfile seeks after every read to resync its
        position, and libmpg123 does not seek sample-exactly, so MP3s read in blocks that way come
        out garbled from the second block on (and a seek to 0 before the first read changes
        MPEG-2 low-rate files by an ulp). Plain sequential reads give what one `read()` gives.
        """
        f = self._file
        if _SF_LIB is None:  # pragma: no cover - no block reads without the internals: read whole
            try:
                data = f.read(dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise _DecodeStopped(_clean(exc)) from None
            if len(data):
                yield data
            return
        while True:
            out = np.empty((frames, self.channels), dtype=np.float32)
            got = int(_SF_LIB.sf_readf_float(f._file, _SF_FFI.cast("float *", out.ctypes.data), frames))
            if got > 0:
                yield out[:got]
            if got < frames:
                err = _SF_LIB.sf_error(f._file)
                if err:
                    raise _DecodeStopped(_clean(sf.LibsndfileError(err).error_string))
                if got <= 0:
                    return

    def info(self, inp: _Input) -> AudioInfo:
        f = self._file
        return AudioInfo(
            duration_seconds=f.frames / f.samplerate,
            sample_rate=f.samplerate,
            channels=f.channels,
            frames=f.frames,
            format=f.format,
            codec=f.subtype,
            decoder=self.backend,
        )

    def close(self) -> None:
        self._file.close()


def _import_av() -> Any:
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
        raise _DecodeStopped(f"unsupported sample format {frame.format.name!r}")
    if fmt == "u8":
        out = (arr.astype(np.float32) - np.float32(128.0)) * np.float32(scale)
    elif fmt in ("s32", "s64"):
        out = (arr.astype(np.float64) * scale).astype(np.float32)
    else:
        out = arr.astype(np.float32) * np.float32(scale)
    return np.ascontiguousarray(out)


class _PyAVDecoder:
    backend = "pyav"
    skipped = 0
    """Packets that failed to decode and were skipped."""
    skip_reason = ""

    def __init__(self, inp: _Input):
        av = self._av = _import_av()
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
                raise _DecodeStopped(ffmpeg_reason(exc)) from None
            try:
                decoded = packet.decode()
            except (av.error.FFmpegError, OSError) as exc:  # one damaged packet: skip it, like ffmpeg
                self.skipped += 1
                self.skip_reason = ffmpeg_reason(exc)
                continue
            for frame in decoded:
                if rate is None:
                    rate = frame.sample_rate
                    _check_source_rate(rate, self._name)
                    if rate != self.sample_rate:  # e.g. HE-AAC, whose header gives the core rate
                        if remaining is not None:
                            remaining = int(round(remaining * rate / self.sample_rate))
                        self.sample_rate = rate
                elif frame.sample_rate != rate:
                    raise _DecodeStopped(f"the sample rate changes mid-stream ({rate} -> {frame.sample_rate} Hz)")
                block = frame_to_array(frame)
                if remaining is not None:
                    block = block[:remaining]
                    remaining -= len(block)
                if len(block):
                    yield block
                if remaining == 0:
                    return

    def info(self, inp: _Input) -> AudioInfo:
        frames = self._declared_frames()
        if frames is None and self._container.duration and self.sample_rate:
            frames = int(round(self._container.duration / 1_000_000 * self.sample_rate))
        if frames is None:  # the container does not say: count by decoding
            try:
                frames = sum(len(b) for b in self.blocks(1 << 16))
            except _DecodeStopped:
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


_Decoder = Union[_SoundfileDecoder, _PyAVDecoder]


def _open_decoder(inp: _Input) -> _Decoder:
    """libsndfile first (exact librosa parity), PyAV for whatever it does not recognise (and for a
    long stream, which libsndfile cannot read without seeking). The stated sample rate is checked."""
    decoder = _open_either_decoder(inp)
    if decoder.backend == "pyav" and not decoder.sample_rate:
        return decoder  # FFmpeg learns some streams' rate from their first frame: checked there
    try:
        _check_source_rate(decoder.sample_rate, inp.name)
    except AudioError:
        decoder.close()
        raise
    return decoder


def _check_source_rate(rate: Any, name: str) -> None:
    if not (isinstance(rate, (int, float)) and MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE):
        raise AudioError(
            f"{name}: its header states a sample rate of {rate} Hz "
            f"(audio has {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz; the file is damaged or not audio)"
        )


def _open_either_decoder(inp: _Input) -> _Decoder:
    if inp.streaming:
        return _open_pyav(inp, "a stream this long is decoded as it comes")
    try:
        return _SoundfileDecoder(inp)
    except (sf.LibsndfileError, RuntimeError) as exc:
        sf_reason = _clean(exc)
    except TypeError as exc:  # soundfile takes a ".raw" name for header-less PCM and wants a rate
        sf_reason = _clean(exc)
    except OSError as exc:  # e.g. the file vanished between the checks and the open
        raise AudioError(f"{inp.name}: cannot read the file ({_clean(exc.strerror or exc)})") from None
    inp.rewind()
    return _open_pyav(inp, sf_reason)


def _open_pyav(inp: _Input, sf_reason: str) -> _PyAVDecoder:
    av = _import_av()
    try:
        return _PyAVDecoder(inp)
    except av.error.FFmpegError as exc:
        av_reason = ffmpeg_reason(exc)
    except OSError as exc:
        raise AudioError(f"{inp.name}: cannot read the file ({_clean(exc.strerror or exc)})") from None
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
    decoder: _Decoder, inp: _Input, frames: int, deadline: Deadline | None = None
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
    except _DecodeStopped as exc:
        if total == 0:
            raise AudioError(f"{inp.name}: cannot decode the audio ({exc})") from None
        warnings.warn(
            f"{inp.name}: decoding stopped after {total / decoder.sample_rate:.2f} s ({exc}); "
            "using the audio before that point",
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
            f"{inp.name}: {decoder.skipped} damaged packet(s) could not be decoded and were skipped "
            f"({decoder.skip_reason})",
            AudioDecodeWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------- samples


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


def _resampled_length(n: int, in_rate: float, out_rate: float) -> int:
    """librosa.resample's ``fix`` length: ``ceil(n * (out / in))`` in the same float arithmetic."""
    return int(math.ceil(n * (float(out_rate) / in_rate)))


def _resample(mono: np.ndarray, in_rate: float, out_rate: float) -> np.ndarray:
    if in_rate == out_rate:
        return mono
    out = soxr.resample(mono, in_rate, out_rate, quality="HQ")
    target = _resampled_length(len(mono), in_rate, out_rate)
    if len(out) < target:
        out = np.concatenate([out, np.zeros(target - len(out), dtype=np.float32)])
    return out[:target]


class StreamResampler:
    """Mono float32 blocks at `in_rate` -> `out_rate`: the outputs of `feed` and `finish`, joined, equal
    `_resample` of the joined inputs bit for bit (libsoxr's output does not depend on the chunking),
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
        pad = _resampled_length(self.n_in, self.in_rate, self.out_rate) - (self.n_out + len(tail))
        if pad > 0:
            tail = np.concatenate([tail, np.zeros(pad, dtype=np.float32)])
        elif pad < 0:  # soxr rounds, librosa takes the ceiling: cut what is still here
            tail = tail[: max(len(tail) + pad, 0)]
        self.n_out += len(tail)
        return tail


def _stream_blocks(
    inp: _Input, decoder: _Decoder, sample_rate: int, block_seconds: float, block_out: int, deadline: Deadline | None
) -> Iterator[np.ndarray]:
    try:
        read_frames = max(min(int(math.ceil(block_seconds * decoder.sample_rate)), MAX_READ_SAMPLES // max(decoder.channels, 1)), 1)
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


# --------------------------------------------------------------------------- arrays


def _check_rate(rate: Any, what: str) -> int:
    try:
        ok = float(rate) > 0 and math.isfinite(float(rate))
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(rate, bool):
        raise UsageError(f"{what} must be a positive number of samples per second, got {rate!r}")
    return int(rate) if float(rate).is_integer() else rate


def _to_numpy(array: Any, name: str) -> np.ndarray:
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
        raise AudioError(f"{name}: not an array of samples ({_clean(exc)})") from None
    return x


def _to_float32(x: np.ndarray, name: str) -> np.ndarray:
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
