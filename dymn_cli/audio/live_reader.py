"""Local live streams read as they fill: standard input, FIFOs, devices, descriptors and file objects.

`read(n)` returns whatever the operating system has at hand (at least one byte, or b'' at the end), and
watches a stop event between polls, so the PCM reader and FFmpeg see a stream end as soon as it is asked to.
"""

from __future__ import annotations

import io
import os
import select
import stat
import sys
import threading
from typing import Any, BinaryIO, Union

from dymn_cli.errors import AudioError, UsageError

__all__ = ["POLL_SECONDS", "READ_BYTES", "LiveReader", "LiveTarget", "describe_target", "open_local"]

READ_BYTES = 1 << 16
"""Most bytes one read takes: a full pipe buffer (about 1 s of 16-bit mono at 32 kHz)."""

POLL_SECONDS = 0.2
"""How often a blocked read looks whether the stream was asked to stop."""

LiveTarget = Union[str, "os.PathLike[str]", BinaryIO, int]
"""`-` (standard input), a path (FIFO, device, file), a network URL, a file descriptor or a binary file object."""


class LiveReader(io.RawIOBase):
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


def open_local(target: LiveTarget, name: str, stop: threading.Event) -> LiveReader:
    if isinstance(target, int):
        return LiveReader(target, name, stop, owned=False)
    if isinstance(target, (str, os.PathLike)):
        path = os.fspath(target)
        if path == "-":
            return LiveReader(sys.stdin.buffer.fileno(), name, stop, owned=False)
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
        return LiveReader(fd, name, stop, owned=True)
    if hasattr(target, "fileno"):
        try:
            return LiveReader(target.fileno(), name, stop, owned=False)
        except (OSError, io.UnsupportedOperation):
            pass
    raise UsageError(f"{name}: a live source is '-', a path, a URL or a file object with a file descriptor")


def describe_target(target: LiveTarget) -> str:
    if isinstance(target, (str, os.PathLike)):
        return os.fspath(target)
    if isinstance(target, int):
        return f"<fd {target}>"
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else "<stream>"
