"""JSON Lines: one record per input, appended and flushed as each input is done."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dymn_cli.results import TagFailure, TagResult
from dymn_cli.writers.base import OutputOptions, Writer, check_header, file_record
from dymn_cli.writers.names import json_text
from dymn_cli.writers.record_log import RecordLog
from dymn_cli.writers.targets import Target, resolve_target

PROVENANCE_KEYS = ("model", "settings", "head")
"""What each record carries of the run's header: the model, the settings that shape its scores, and the head."""


class JsonlWriter(Writer):
    """One JSON object per input, written and flushed as soon as that input is done.

    Every line is a record about one input, a result or a failure, with its `path`, and each record
    carries the model and settings that wrote it (`model`, `settings`, and `head` with one): a file
    and a stream (a pipe) get the same lines, and a file stays self-describing after `cat`, `merge`,
    shards or a cut. `--resume` appends to the file in place: its earlier records stay where they are.

    A file of the release before, whose first line is a header `{"model", "settings"}` without `path`
    and whose records lack them, is still read (`--resume`, `merge`, `evaluate`); `--resume` continues
    it in its own form, `merge` rewrites it as records only.
    """

    name = "jsonl"
    extension = ".jsonl"
    mergeable = True

    def __init__(
        self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False
    ) -> None:
        super().__init__(target, options=options, header=header, append=append)
        resolved = target if isinstance(target, Target) else resolve_target(target)
        self._provenance = {key: header[key] for key in PROVENANCE_KEYS if key in header}
        if append and resolved.real is not None and _header_line(resolved.real) is not None:
            self._provenance = {}  # (a file of the older form goes on in that form: its header line says it)
        self._log = RecordLog(resolved, append=append)

    @classmethod
    def carries_over(cls) -> bool:
        return False

    @classmethod
    def read_header(cls, target: Path) -> dict[str, Any] | None:
        """The model and settings of the file's first record (or of its older header line); None when
        it has no record yet, or its records do not say (an older stream's)."""
        first = _first_line(target)
        if first is None:
            return None
        return _provenance(_record(first, 1)) or None

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any], model: str | None = None) -> None:
        if _first_line(target) is None:  # (empty, or its first record cut short: nothing was finished)
            with open(target, "rb") as stream:
                start = stream.read(64).lstrip()
            if start and not start.startswith(b"{"):
                raise ValueError("it is not JSON Lines")
            return
        check_header(cls.read_header(target), settings=settings, model=model)

    @classmethod
    def iter_records(cls, target: Path, *, payloads: bool = True) -> Iterator[tuple[str, Any]]:
        """Every record, checked to come from the run that wrote the first (by its own `model` and
        `settings`, or by the older header line above it)."""
        first: dict[str, Any] | None = None
        current: dict[str, Any] = {}  # (the provenance of records that do not carry their own: an older header's)
        with open(target, "rb") as stream:
            for number, line in enumerate(stream, start=1):
                if not line.endswith(b"\n") or not line.strip():
                    continue  # (a half-written last line: cut off when the file is continued)
                record = _record(line, number)
                found = _provenance(record)
                if "path" not in record:
                    current = found
                else:
                    found = found or current
                if first is None:
                    first = found
                elif not _same_run(found, first):
                    raise ValueError(f"line {number} was written by another model or other settings than the first record")
                if "path" in record:
                    yield record["path"], record if payloads else None

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._log.append(jsonl_line({**file_record(outcome, self.options), **self._provenance}))

    def write_existing(self, path: str, payload: Any) -> None:
        if self.append:
            return  # already in the file this run appends to
        self._log.append(jsonl_line({**payload, **self._provenance}))

    def close(self) -> None:
        self._log.close()

    def discard(self) -> None:
        self._log.discard()


def jsonl_line(record: dict[str, Any]) -> bytes:
    return (json_text(record) + "\n").encode("utf-8")


def _record(line: bytes, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line.decode("utf-8", "surrogateescape"))
    except json.JSONDecodeError as error:
        raise ValueError(f"line {number} is not JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"line {number} is not a JSON object")
    if "path" not in record and "settings" not in record:
        raise ValueError(f"line {number} is not a record of an input (it has no path)")
    return record


def _provenance(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in PROVENANCE_KEYS if key in record}


def _same_run(provenance: dict[str, Any], other: dict[str, Any]) -> bool:
    """The same model and settings (a head's file may be named by another path: its classes are in the settings)."""
    return all(provenance.get(key) == other.get(key) for key in ("model", "settings"))


def _first_line(target: Path) -> bytes | None:
    """The first whole, non-blank line of a file (None: there is none yet)."""
    with open(target, "rb") as stream:
        for line in stream:
            if not line.endswith(b"\n"):
                return None
            if line.strip():
                return line
    return None


def _header_line(target: Path) -> dict[str, Any] | None:
    """The header line of a file of the older form (None: a file of records only, or none yet)."""
    try:
        first = _first_line(target)
        record = json.loads(first) if first is not None else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "path" not in record else None
