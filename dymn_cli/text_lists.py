"""Lists that options read, one item a line (`--files-from FILE`, `--labels @FILE`): the one bounded reader.

Whatever the file is (a regular file, a FIFO, a device such as /dev/zero or /dev/urandom, an endless
pipe), reading it costs bounded memory and, where the list has one, bounded time:

- a line longer than `max_line` bytes, or one that holds a NUL byte, ends the reading with a usage error
  (the file is not a list);
- `max_total` bounds the bytes of the whole list (None: a list of paths may be as long as it likes);
- `wait` bounds the seconds spent waiting for bytes (a FIFO without a writer, a stalled pipe): None
  waits as long as it takes (a `find | dymn-tag --files-from -` may take its time).

Lines come back decoded as `os.fsdecode` decodes names (a byte that is not UTF-8 as a lone surrogate).
"""

from __future__ import annotations

import os
import select
import stat
import sys
import time
from collections.abc import Iterator

from dymn_cli.errors import UsageError

__all__ = ["STDIN", "read_bounded", "read_lines"]

STDIN = "-"
CHUNK = 1 << 16


def read_lines(
    source: str, *, what: str, max_line: int, max_total: int | None = None, wait: float | None = None
) -> Iterator[tuple[int, str]]:
    """`(line number, line)` of the list at `source` (`-`: standard input), without its line end;
    `what` names the list in messages ("file list", "label list")."""
    name = "standard input" if source == STDIN else source
    if source == STDIN:
        if sys.stdin is None:
            raise UsageError(f"cannot read the {what} from standard input: it is closed")
        fd, owned = sys.stdin.buffer.fileno(), False
    else:
        fd, owned = _open(source, what), True
    try:
        yield from _lines(fd, name, what=what, max_line=max_line, max_total=max_total, wait=wait)
    finally:
        if owned:
            os.close(fd)


def read_bounded(source: str, *, what: str, max_total: int, wait: float | None) -> bytes:
    """The whole of a small file an option names (a thresholds or truth file): at most `max_total`
    bytes, waited for at most `wait` seconds (a FIFO without a writer); a usage error otherwise."""
    fd = _open(source, what)
    deadline = None if wait is None else time.monotonic() + wait
    parts: list[bytes] = []
    total = 0
    try:
        while chunk := _read(fd, source, what, deadline, wait):
            total += len(chunk)
            if total > max_total:
                raise UsageError(f"{source}: larger than {max_total >> 20} MiB, too large for a {what}")
            parts.append(chunk)
    finally:
        os.close(fd)
    return b"".join(parts)


def _open(source: str, what: str) -> int:
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # (a FIFO opens at once, writer or not)
    except FileNotFoundError:
        raise UsageError(f"{source}: no such file (the {what})") from None
    except PermissionError:
        raise UsageError(f"{source}: permission denied (the {what})") from None
    except OSError as error:
        raise UsageError(f"{source}: cannot read the {what}: {error.strerror or error}") from None
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{source}: a folder, not a {what}")
    return fd


def _lines(
    fd: int, name: str, *, what: str, max_line: int, max_total: int | None, wait: float | None
) -> Iterator[tuple[int, str]]:
    deadline = None if wait is None else time.monotonic() + wait
    pending = b""
    total = number = 0
    while True:
        chunk = _read(fd, name, what, deadline, wait)
        total += len(chunk)
        if max_total is not None and total > max_total:
            raise UsageError(f"{name}: longer than {max_total} bytes: not a {what}")
        pending += chunk
        *whole, pending = pending.split(b"\n") if chunk else [*pending.split(b"\n"), b""]
        for line in whole:
            number += 1
            yield number, _checked(line, number, name, what, max_line)
        if len(pending) > max_line:
            raise UsageError(f"{name}: line {number + 1} is longer than {max_line} bytes: not a {_kind(what)}")
        if not chunk:
            return


def _read(fd: int, name: str, what: str, deadline: float | None, wait: float | None) -> bytes:
    """The next bytes (b'' at the end), waiting at most until `deadline`."""
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        except (OSError, ValueError):  # (a descriptor select cannot watch: read, blocking)
            ready = [fd]
        if not ready:
            raise UsageError(f"{name}: the {what} did not come within {wait:g} s (a FIFO without a writer?)")
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            continue
        except OSError as error:
            raise UsageError(f"{name}: cannot read {what}: {error.strerror or error}") from None


def _checked(line: bytes, number: int, name: str, what: str, max_line: int) -> str:
    if len(line) > max_line:
        raise UsageError(f"{name}: line {number} is longer than {max_line} bytes: not a {_kind(what)}")
    if b"\0" in line:
        raise UsageError(f"{name}: line {number} holds a NUL byte: not a {_kind(what)}")
    return os.fsdecode(line.rstrip(b"\r"))


def _kind(what: str) -> str:
    return "list of paths" if what == "file list" else what
