"""JSON Lines: one record per input, appended and flushed as each input is done."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dymn_cli.results import TagFailure, TagResult
from dymn_cli.writers.base import OutputOptions, Writer, file_record
from dymn_cli.writers.names import json_text
from dymn_cli.writers.record_log import RecordLog
from dymn_cli.writers.targets import Target, resolve_target


class JsonlWriter(Writer):
    """One JSON object per input, written and flushed as soon as that input is done.

    In a file, the first line is the header record, `{"model": ..., "settings": {...}}` (no `path`),
    so that `--resume` and `merge` know what wrote it; a stream (a pipe, a terminal) gets the input
    records only. `--resume` appends to the file in place: its earlier records stay where they are.
    """

    name = "jsonl"
    extension = ".jsonl"
    mergeable = True

    def __init__(
        self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False
    ) -> None:
        super().__init__(target, options=options, header=header, append=append)
        resolved = target if isinstance(target, Target) else resolve_target(target)
        first = jsonl_line(header) if resolved.is_file and header else b""
        self._log = RecordLog(resolved, header=first, append=append)

    @classmethod
    def carries_over(cls) -> bool:
        return False

    @classmethod
    def read_header(cls, target: Path) -> dict[str, Any] | None:
        with open(target, "rb") as stream:
            first = stream.readline()
        if not first.endswith(b"\n"):
            return None
        record = json.loads(first)
        return record if isinstance(record, dict) and "path" not in record and "settings" in record else None

    @classmethod
    def iter_records(cls, target: Path, *, payloads: bool = True) -> Iterator[tuple[str, Any]]:
        with open(target, "rb") as stream:
            for line in stream:
                if not line.endswith(b"\n") or not line.strip():
                    continue  # (a half-written last line: cut off when the file is continued)
                record = json.loads(line.decode("utf-8", "surrogateescape"))
                if "path" in record:
                    yield record["path"], record if payloads else None

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._log.append(jsonl_line(file_record(outcome, self.options)))

    def write_existing(self, path: str, payload: Any) -> None:
        if self.append:
            return  # already in the file this run appends to
        self._log.append(jsonl_line(payload))

    def close(self) -> None:
        self._log.close()

    def discard(self) -> None:
        self._log.discard()


def jsonl_line(record: dict[str, Any]) -> bytes:
    return (json_text(record) + "\n").encode("utf-8")
