"""The output formats, by name: built here, in one place, from the writer classes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dymn_cli.errors import UsageError
from dymn_cli.writers.base import Writer
from dymn_cli.writers.editors import AudacityWriter, RavenWriter
from dymn_cli.writers.formats.csv_table import CsvWriter
from dymn_cli.writers.formats.json_document import JsonWriter
from dymn_cli.writers.formats.json_lines import JsonlWriter
from dymn_cli.writers.formats.parquet_table import ParquetWriter
from dymn_cli.writers.formats.text_table import TableWriter
from dymn_cli.writers.targets import is_terminal, resolve_target

WRITERS: dict[str, type[Writer]] = {
    w.name: w for w in (TableWriter, CsvWriter, JsonWriter, JsonlWriter, ParquetWriter, AudacityWriter, RavenWriter)
}
"""Every `--format`, in the order help and messages list them."""

MERGEABLE_FORMATS = tuple(name for name, w in WRITERS.items() if w.mergeable)
"""The formats that part files (`--output-dir`) and `dymn-tag merge` write: csv, json, jsonl, parquet."""


def writer_class(format: str | None, target: Path | None, *, stdout_is_terminal: bool) -> type[Writer]:
    """Explicit format first, then the output file's extension, then table (terminal) or JSONL (pipe)."""
    if format is not None:
        if format not in WRITERS:
            raise UsageError(f"unknown format {format!r}: use one of {', '.join(WRITERS)}")
        return WRITERS[format]
    if target is not None:
        if os.path.isdir(target):  # (False for a name too long to look up: resolve_target says why)
            raise UsageError(f"{target}: is a folder: name a file to write")
        by_extension = {w.extension: w for w in WRITERS.values() if w is not TableWriter and not w.per_input}
        suffix = target.suffix.lower()
        if suffix in by_extension:
            return by_extension[suffix]
        stream = resolve_target(target)
        if stream.is_file:
            raise UsageError(f"{target}: cannot tell the format from the extension {suffix or '(none)'}: add --format")
        # a pipe or device named without an extension (/dev/stdout, a FIFO): as for standard output
        return TableWriter if is_terminal(stream) or (stream.descriptor is None and _is_tty_path(target)) else JsonlWriter
    return TableWriter if stdout_is_terminal else JsonlWriter


def _is_tty_path(path: Path) -> bool:
    """Whether a character device is a terminal (a FIFO is never opened here: its reader would see the end)."""
    try:
        if not stat.S_ISCHR(os.stat(path).st_mode):
            return False
        handle = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return os.isatty(handle)
    finally:
        os.close(handle)
