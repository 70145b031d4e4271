"""Text for a terminal: what a file name may hold (any byte but / and NUL) must not drive it, and
nothing written to the terminal lands inside a display that redraws itself (a progress bar).

A name with a carriage return, an escape sequence or bytes that are not UTF-8 is shown escaped, so
that every message stays one line and the terminal does only what we print.

A live display (a bar, a spinner) redraws the bottom lines of the terminal in place. Anything else
written to the terminal meanwhile (results on stdout, log lines on stderr) would be drawn into it:
every such write goes through `terminal_output()`, which takes the display off the screen, lets the
write happen, and draws the display again below it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogate escape): the byte
        return f"\\x{code - 0xDC00:02x}"
    if code > 0xFF:
        return f"\\u{code:04x}"
    return f"\\x{code:02x}"


def printable(text: str) -> str:
    """`text` with control characters (C0, DEL, C1), backslashes and lone surrogates escaped
    (``\\n``, ``\\r``, ``\\t``, ``\\\\``, ``\\x1b``, a non-UTF-8 byte of a name as ``\\xff``)."""
    return _UNSAFE.sub(_escape, text)


def quiet_native_stderr() -> None:
    """Send what C libraries print on stderr (mpg123's "Note: Illegal Audio-MPEG-Header", ...) to
    /dev/null; Python's `sys.stderr` keeps the real one. A decoding problem reaches the user as one
    clean line, through our messages; the libraries' chatter would only interleave with those lines,
    raw (control characters and all). For decode workers, and for dymn-tag, which decodes in process."""
    try:
        sys.stderr.flush()
        kept = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = open(kept, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    except (OSError, AttributeError, ValueError):
        pass  # (no stderr at all, e.g. started with 2>&-: nothing to protect)


_screen_lock = threading.RLock()  # (a log line from one thread, a result from another)
_displays: list[tuple[Callable[[], None], Callable[[], None]]] = []
_log_streams: list[tuple[logging.StreamHandler, Any]] = []  # type: ignore[type-arg]


@contextlib.contextmanager
def live_display(hide: Callable[[], None], show: Callable[[], None]) -> Iterator[None]:
    """While the block runs, a display that redraws itself holds the bottom of the terminal: `hide`
    takes it off the screen (a transient rich Live: its `stop`), `show` draws it again (`start`).
    Meanwhile the log's lines to a terminal go through `terminal_output` too."""
    with _screen_lock:
        if not _displays:
            _log_through_terminal_output()
        _displays.append((hide, show))
    try:
        yield
    finally:
        with _screen_lock:
            _displays.remove((hide, show))
            if not _displays:
                for handler, stream in _log_streams:
                    handler.setStream(stream)
                _log_streams.clear()


@contextlib.contextmanager
def terminal_output() -> Iterator[None]:
    """Around a write to the terminal: the live displays are off the screen while it happens."""
    with _screen_lock:
        shown = list(_displays)
        for hide, _ in reversed(shown):
            hide()
        try:
            yield
        finally:
            for _, show in shown:
                show()


class _AboveTheDisplay:
    """A log handler's text stream, each write of which (a whole line: `StreamHandler.emit` writes the
    message and its newline at once) happens with the live displays off the screen."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        with terminal_output():
            written = self.stream.write(text)
            self.stream.flush()
        return written

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _log_through_terminal_output() -> None:
    for logger in (logging.getLogger(), logging.getLogger("dymn_cli")):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and _is_terminal(handler.stream):
                _log_streams.append((handler, handler.setStream(_AboveTheDisplay(handler.stream))))


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
