"""The output formats, by name: built here, in one place, from the writer classes."""

from __future__ import annotations

from pathlib import Path

from dymn_cli.errors import UsageError
from dymn_cli.writers.base import Writer
from dymn_cli.writers.editors import AudacityWriter, RavenWriter
from dymn_cli.writers.formats import CsvWriter, JsonlWriter, JsonWriter, ParquetWriter, TableWriter

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
        by_extension = {w.extension: w for w in WRITERS.values() if w is not TableWriter and not w.per_input}
        suffix = target.suffix.lower()
        if suffix not in by_extension:
            raise UsageError(f"{target}: cannot tell the format from the extension {suffix or '(none)'}: add --format")
        return by_extension[suffix]
    return TableWriter if stdout_is_terminal else JsonlWriter
