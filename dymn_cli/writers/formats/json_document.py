"""JSON: one document with the model, the settings and the list of files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dymn_cli.results import TagFailure, TagResult
from dymn_cli.writers.base import OutputOptions, Writer, file_record
from dymn_cli.writers.formats.json_reading import json_document_files, json_document_header
from dymn_cli.writers.names import json_text
from dymn_cli.writers.output_file import OutputFile
from dymn_cli.writers.targets import Target, resolve_target


class JsonWriter(Writer):
    """One document: the model, the settings and a list of files, written as the files come (the
    document's layout is the one `json.dump(indent=2)` gives), and read back one file at a time."""

    name = "json"
    extension = ".json"
    mergeable = True
    _INDENT = "\n    "

    def __init__(
        self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False
    ) -> None:
        super().__init__(target, options=options, header=header, append=append)
        self._file = OutputFile(target if isinstance(target, Target) else resolve_target(target))
        opening = json_text({**header, "files": []}, indent=2)
        assert opening.endswith("[]\n}")
        self._file.write(opening[: -len("]\n}")])
        self._count = 0

    @classmethod
    def read_header(cls, target: Path) -> dict[str, Any]:
        with open(target, encoding="utf-8", errors="surrogateescape") as stream:
            return json_document_header(stream)

    @classmethod
    def iter_records(cls, target: Path, *, payloads: bool = True) -> Iterator[tuple[str, Any]]:
        with open(target, encoding="utf-8", errors="surrogateescape") as stream:
            for record in json_document_files(stream):
                yield record["path"], record if payloads else None

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._record(file_record(outcome, self.options))
        if not self._file.target.is_file:
            self._file.flush()

    def write_existing(self, path: str, payload: Any) -> None:
        self._record(payload)

    def _record(self, record: dict[str, Any]) -> None:
        text = json_text(record, indent=2).replace("\n", self._INDENT)
        self._file.write(("," if self._count else "") + self._INDENT + text)
        self._count += 1

    def close(self) -> None:
        self._file.write("\n  ]\n}\n" if self._count else "]\n}\n")
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()
