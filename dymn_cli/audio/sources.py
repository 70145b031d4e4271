"""Audio sources: paths, bytes and binary file objects, resolved to something a decoder can open.

A path is checked (exists, not a folder, not empty) and opened lazily by the decoder; a pipe, a
special file or a non-seekable file object is read into memory first (libsndfile needs to seek).
Every problem raises `AudioError` with a one-line message that starts with the input's name.
"""

from __future__ import annotations

import io
import os
import stat
from typing import Any, BinaryIO, Union

from dymn_cli.errors import AudioError

AudioSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]
"""A path, the bytes of a file, or a binary file object (e.g. ``sys.stdin.buffer``)."""


class ResolvedSource:
    """A resolved source: a display name plus either a real path or a seekable binary file object."""

    def __init__(self, name: str, path: str | None = None, fileobj: BinaryIO | None = None, owned: bool = False):
        self.name = name
        self.path = path
        self.fileobj = fileobj
        self._owned = owned

    def rewind(self) -> None:
        if self.fileobj is not None:
            self.fileobj.seek(0)

    def soundfile_target(self) -> str | BinaryIO:
        assert self.path is not None or self.fileobj is not None
        return self.path if self.path is not None else self.fileobj  # type: ignore[return-value]

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


def resolve_source(source: AudioSource, name: str | None = None) -> ResolvedSource:
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "<bytes>"
        data = bytes(source)
        if not data:
            raise AudioError(f"{name}: empty input (0 bytes)")
        return ResolvedSource(name, fileobj=io.BytesIO(data), owned=True)
    if isinstance(source, (str, os.PathLike)):
        return _resolve_path(os.fspath(source), name)
    if isinstance(source, io.TextIOBase):
        raise AudioError(
            f"{name or _stream_name(source)}: opened in text mode; pass a binary stream (e.g. sys.stdin.buffer)"
        )
    if hasattr(source, "read"):
        return _resolve_fileobj(source, name or _stream_name(source))
    raise AudioError(f"{name or type(source).__name__}: not a path, bytes or binary file object")


def _resolve_path(path: str | bytes, name: str | None = None) -> ResolvedSource:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    shown = name or path
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise AudioError(f"{shown}: file not found") from None
    except PermissionError:
        raise AudioError(f"{shown}: permission denied") from None
    except OSError as exc:
        raise AudioError(f"{shown}: cannot access the file ({one_line(exc.strerror or exc)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{shown}: is a directory, not an audio file")
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by ResolvedSource.close (or right here)
    except PermissionError:
        raise AudioError(f"{shown}: permission denied") from None
    except OSError as exc:
        raise AudioError(f"{shown}: cannot open the file ({one_line(exc.strerror or exc)})") from None
    if not stat.S_ISREG(st.st_mode):
        # a named pipe, /dev/stdin, a process substitution: read it like a non-seekable stream
        with fh:
            return _buffer_stream(fh, shown)
    fh.close()
    if st.st_size == 0:
        raise AudioError(f"{shown}: empty file (0 bytes)")
    return ResolvedSource(shown, path=path)


def _buffer_stream(fh: Any, name: str) -> ResolvedSource:
    try:
        chunks = []
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise AudioError(f"{name}: opened in text mode; pass a binary stream (e.g. sys.stdin.buffer)")
            chunks.append(bytes(chunk))
    except OSError as exc:
        raise AudioError(f"{name}: cannot read the input ({one_line(exc.strerror or exc)})") from None
    data = b"".join(chunks)
    if not data:
        raise AudioError(f"{name}: empty input (0 bytes)")
    return ResolvedSource(name, fileobj=io.BytesIO(data), owned=True)


def _resolve_fileobj(fh: Any, name: str) -> ResolvedSource:
    try:
        seekable = bool(fh.seekable()) and fh.tell() == 0
    except (AttributeError, OSError, ValueError):
        seekable = False
    if not seekable:
        return _buffer_stream(fh, name)
    try:
        size = fh.seek(0, io.SEEK_END)
        fh.seek(0)
    except OSError as exc:
        raise AudioError(f"{name}: cannot read the input ({one_line(exc.strerror or exc)})") from None
    if size == 0:
        raise AudioError(f"{name}: empty input (0 bytes)")
    return ResolvedSource(name, fileobj=fh)

