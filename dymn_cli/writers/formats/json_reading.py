"""Reading a JSON output document in pieces: its header, then its `files` records one at a time,
in bounded memory however large the document (for `--resume`, `merge` and other readers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO


def _json_values(stream: TextIO) -> Iterator[Any]:
    """Yield the parts of a JSON document `{"k": v, ..., "files": [r, r, ...], ...}` as they are read:
    `("key", value)` for each top-level key, then `("file", r)` for each record of `files`, without
    ever holding more than one record (and a read-ahead chunk) in memory."""
    decoder = json.JSONDecoder()
    buffer, position, ended = "", 0, False

    def more() -> bool:
        nonlocal buffer, position, ended
        chunk = stream.read(1 << 20)
        buffer, position = buffer[position:] + chunk, 0
        ended = not chunk
        return bool(chunk)

    def skip(*allowed: str) -> str:
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n":
                position += 1
            if position < len(buffer):
                found = buffer[position]
                if found not in allowed:
                    raise ValueError(f"not a dymn-tag JSON document (found {found!r} where {' or '.join(allowed)} was expected)")
                position += 1
                return found
            if not more():
                raise ValueError("the JSON document ends too early")

    def value() -> Any:
        nonlocal position
        peek_value()
        while True:
            try:
                parsed, end = decoder.raw_decode(buffer, position)
                if end < len(buffer) or ended:  # (a number at the very end of the buffer may go on)
                    position = end
                    return parsed
            except json.JSONDecodeError:
                if ended:
                    raise
            more()

    def peek_value() -> None:
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n":
                position += 1
            if position < len(buffer) or not more():
                return

    skip("{")
    peek_value()
    if buffer[position : position + 1] == "}":
        return
    while True:
        key = value()
        skip(":")
        if key == "files":
            skip("[")
            peek_value()
            if buffer[position : position + 1] == "]":
                position += 1
            else:
                while True:
                    yield "file", value()
                    if skip(",", "]") == "]":
                        break
        else:
            yield "key", (key, value())
        if skip(",", "}") == "}":
            return


def json_document_header(stream: TextIO) -> dict[str, Any]:
    """The keys before `files` of a JSON output (its model and settings), read without the records."""
    header: dict[str, Any] = {}
    for kind, item in _json_values(stream):
        if kind == "file":
            break
        header[item[0]] = item[1]
    return header


def json_document_files(stream: TextIO) -> Iterator[dict[str, Any]]:
    """The `files` records of a JSON output, one at a time."""
    for kind, item in _json_values(stream):
        if kind == "file":
            yield item
