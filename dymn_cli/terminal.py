"""Text for a terminal: what a file name may hold (any byte but / and NUL) must not drive it.

A name with a carriage return, an escape sequence or bytes that are not UTF-8 is shown escaped, so
that every message stays one line and the terminal does only what we print.
"""

from __future__ import annotations

import os
import re
import sys

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
