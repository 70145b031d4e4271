"""Audio sources: paths, bytes and binary file objects, resolved to something a decoder can open.

A path is checked (exists, not a folder, not empty) and opened lazily by the decoder; a pipe, a
special file or a non-seekable file object is read as a stream: into memory up to `MAX_STREAM_BUFFER`
bytes, decoded as it comes beyond that. Every problem raises `AudioError` with a one-line message that
starts with the input's name.
"""

from __future__ import annotations

import io
import os
import select
import stat
import time
from typing import Any, BinaryIO, Union

from dymn_cli.errors import AudioError, TimedOut

MAX_STREAM_BUFFER = 64 << 20
"""A stream (standard input, a FIFO, a device) is read into memory up to this many bytes: if it ends
there it is decoded like a file (libsndfile first); if not it is decoded as it comes, by FFmpeg, which
needs no seeking. Memory stays bounded however long, or endless, the stream is."""

AudioSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]
"""A path, the bytes of a file, or a binary file object (e.g. ``sys.stdin.buffer``)."""


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


class ResolvedSource:
    """A resolved source: a display name plus either a real path or a seekable binary file object."""

    def __init__(self, name: str, path: str | None = None, fileobj: Any = None, owned: bool = False, streaming: bool = False):
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


def one_line(message: object) -> str:
    """One line, no trailing dot: decoder messages sometimes span lines."""
    return " ".join(str(message).split()).rstrip(".")


def _stream_name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    return "<stream>"


def resolve_source(source: AudioSource, name: str | None = None, deadline: Deadline | None = None) -> ResolvedSource:
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "<bytes>"
        data = bytes(source)
        if not data:
            raise AudioError(f"{name}: empty input (0 bytes)")
        return ResolvedSource(name, fileobj=io.BytesIO(data), owned=True)
    if isinstance(source, (str, os.PathLike)):
        return _resolve_path(os.fspath(source), name, deadline, regular=isinstance(source, RegularFile))
    if isinstance(source, io.TextIOBase):
        raise AudioError(f"{name or _stream_name(source)}: opened in text mode; pass a binary stream (e.g. sys.stdin.buffer)")
    if hasattr(source, "read"):
        return _resolve_fileobj(source, name or _stream_name(source), deadline)
    raise AudioError(f"{name or type(source).__name__}: not a path, bytes or binary file object")


class RegularFile(str):
    """A path that was a regular file when it was found (by a folder walk). Should it be something else
    when it is opened (a FIFO swapped in since), it fails at once: as a stream it would wait for a writer."""

    __slots__ = ()


def _resolve_path(
    path: str | bytes, name: str | None = None, deadline: Deadline | None = None, *, regular: bool = False
) -> ResolvedSource:
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
        raise AudioError(f"{shown}: cannot open the file ({one_line(exc.strerror or exc)})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise AudioError(f"{shown}: is a directory, not an audio file")
        if regular and not stat.S_ISREG(st.st_mode):
            raise AudioError(f"{shown}: was a regular file when its folder was walked, is not one now: not read")
        if not stat.S_ISREG(st.st_mode):
            # a FIFO, a device, /dev/stdin, a process substitution: read as a stream, never whole
            os.set_blocking(fd, True)  # (select() below says when a read would not block)
            with open(fd, "rb", buffering=0, closefd=True) as fh:
                fd = -1
                return _buffer_stream(fh, shown, deadline)
    except OSError as exc:
        raise AudioError(f"{shown}: cannot read the file ({one_line(exc.strerror or exc)})") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if st.st_size == 0:
        raise AudioError(f"{shown}: empty file (0 bytes)")
    return ResolvedSource(shown, path=path)


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
        read = getattr(self._fh, "read1", None) or self._fh.read
        while True:
            self._wait()
            try:
                chunk = read(size)
            except OSError as exc:
                raise AudioError(f"{self.name}: cannot read the input ({one_line(exc.strerror or exc)})") from None
            if chunk is not None:
                break
            time.sleep(0.01)  # a non-blocking stream with nothing yet, and no descriptor to wait on
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


def _buffer_stream(fh: Any, name: str, deadline: Deadline | None = None) -> ResolvedSource:
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
            return ResolvedSource(name, fileobj=io.BytesIO(data), owned=True)
        chunks.append(chunk)
        size += len(chunk)
    return ResolvedSource(name, fileobj=_StreamReader(fh, name, deadline, head=b"".join(chunks)), streaming=True)


def read_stream(stream: Any, name: str, *, deadline: Deadline | None = None) -> bytes:
    """All the bytes of a binary stream that ends within `MAX_STREAM_BUFFER` bytes (for a decode
    worker, which cannot share the stream); `AudioError` for a longer one, `TimedOut` past `deadline`."""
    if isinstance(stream, io.TextIOBase):
        raise AudioError(f"{name}: opened in text mode; pass a binary stream (e.g. sys.stdin.buffer)")
    reader = _StreamReader(stream, name, deadline)
    chunks: list[bytes] = []
    size = 0
    while chunk := reader.read(1 << 20):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_STREAM_BUFFER:
            raise AudioError(
                f"{name}: a stream longer than {MAX_STREAM_BUFFER >> 20} MiB is decoded as it comes only in "
                "the process that reads it: tag it with workers=0 (-j 0)"
            )
    return b"".join(chunks)


def _resolve_fileobj(fh: Any, name: str, deadline: Deadline | None = None) -> ResolvedSource:
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
        raise AudioError(f"{name}: cannot read the input ({one_line(exc.strerror or exc)})") from None
    if size == 0:
        raise AudioError(f"{name}: empty input (0 bytes)")
    return ResolvedSource(name, fileobj=fh)


def _is_regular(fh: Any) -> bool:
    """Whether a file object is backed by a regular file (a character device such as /dev/zero says
    it is seekable, and has size 0), or by no file at all (a BytesIO)."""
    try:
        return stat.S_ISREG(os.fstat(fh.fileno()).st_mode)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return True
