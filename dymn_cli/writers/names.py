"""How file names are written in outputs, whatever bytes the OS allows in them.

Linux names are bytes; Python holds a name that is not UTF-8 the way `os.fsdecode` gives it, each
byte that is not UTF-8 as a lone surrogate (byte 0xff as U+DCFF). UTF-8 files cannot hold those, so:

- JSON and JSONL write them as JSON escapes (``"bad\\udcff.wav"``): any JSON parser reads the file,
  and Python's `json` gives back the very string `os.fsdecode` gives, `os.fsencode` the very bytes.
- CSV and Parquet write each such byte as ``\\xNN`` (``bad\\xff.wav``); a backslash that would
  otherwise read as the start of an escape (followed by another backslash, or by ``xNN`` with NN from
  80 to ff) is doubled. Names without those (nearly all) are written exactly as they are.
  `name_from_csv` undoes it: `--resume` and `merge` recognise every name again.
- On a terminal (stderr, tables), see `terminal.printable`.
"""

from __future__ import annotations

import csv
import json
import re
from typing import Any, TextIO

_SURROGATE = re.compile("[\ud800-\udfff]")
_CSV_AMBIGUOUS_BACKSLASH = re.compile(r"\\(?=\\|x[89a-fA-F][0-9a-fA-F]|[\udc80-\udcff])")
_CSV_ESCAPE = re.compile(r"\\(\\|x[89a-fA-F][0-9a-fA-F])")


def json_text(value: Any, **options: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, ...)` that UTF-8 can hold: lone surrogates as ``\\udcxx``."""
    text = json.dumps(value, ensure_ascii=False, **options)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def csv_name(name: str) -> str:
    """A name as CSV and Parquet write it (see the module docstring)."""
    if "\\" not in name and not _SURROGATE.search(name):
        return name
    name = _CSV_AMBIGUOUS_BACKSLASH.sub(r"\\\\", name)
    return _SURROGATE.sub(_surrogate_escape, name)


def _surrogate_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return "\ufffd"  # (a lone surrogate no file name can hold: not from os.fsdecode)


def name_from_csv(text: str) -> str:
    """The name (as `os.fsdecode` gives it) that `csv_name` wrote as `text`."""
    if "\\" not in text:
        return text
    return _CSV_ESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(0xDC00 + int(m.group(1)[1:], 16)), text)


class _RecordsEndingInNewline:
    """A stream that `csv.writer` writes with "\\r\\n" records, so that it quotes every field holding
    a carriage return (it quotes only the characters of its line terminator); stored with "\\n"."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if text.endswith("\r\n"):
            text = text[:-2] + "\n"
        return self._stream.write(text)


def csv_writer(stream: TextIO) -> Any:
    """A `csv.writer` with "\\n" line ends that quotes every field that needs it (CR and LF included)."""
    return csv.writer(_RecordsEndingInNewline(stream), lineterminator="\r\n")
