"""Output writers, one small class per format, looked up by name or by a file's extension.

Files are never left half-written: CSV, JSON and Parquet go to a temporary file beside the target and are
renamed into place when the run ends (also when it is interrupted: finished results are kept);
JSONL is appended and flushed one input at a time, so that a killed run keeps every finished line.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from dymn_cli.atomic import AtomicFile, atomic_binary_file, atomic_text_file
from dymn_cli.errors import UsageError
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.terminal import printable
from dymn_cli.writers.base import OutputOptions, Writer, check_columns, check_settings, file_record, score
from dymn_cli.writers.names import csv_name, csv_writer, json_text, name_from_csv


class CsvWriter(Writer):
    """Long form: one row per (input, label); with a timeline, one row per (input, window, label);
    with events, one row per sound event. One table per file, so not a timeline and events at once."""

    name = "csv"
    extension = ".csv"
    CLIP_COLUMNS = ["path", "rank", "label", "mid", "index", "score"]
    TIMELINE_COLUMNS = ["path", "start", "end", "label", "mid", "index", "score"]
    EVENT_COLUMNS = ["path", "start", "end", "label", "mid", "index", "peak", "mean"]

    def __init__(self, target: Path | None, *, options: OutputOptions, header: dict[str, Any]) -> None:
        super().__init__(target, options=options, header=header)
        self.validate(options=options, target=target, inputs=())
        self._file = AtomicFile(target) if target is not None else None
        stream = self._file.stream if self._file is not None else sys.stdout
        self._csv = csv_writer(stream)
        self._csv.writerow(self.columns(options))

    @classmethod
    def columns(cls, options: OutputOptions) -> list[str]:
        if options.events is not None:
            return cls.EVENT_COLUMNS
        return cls.TIMELINE_COLUMNS if options.timeline else cls.CLIP_COLUMNS

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any]) -> None:
        with open(target, encoding="utf-8", newline="") as stream:
            check_columns(next(csv.reader(stream), []), cls.columns(options))

    @classmethod
    def validate(cls, *, options: OutputOptions, target: Path | None, inputs: Sequence[Any]) -> None:
        if options.timeline and options.events is not None:
            raise UsageError("a CSV holds one table: ask for --timeline or --events, or write JSON/JSONL for both")

    @classmethod
    def read_existing(cls, target: Path) -> dict[str, Any]:
        rows: dict[str, list[list[str]]] = {}
        with open(target, encoding="utf-8", newline="") as stream:
            reader = csv.reader(stream)
            next(reader, None)
            for row in reader:
                if row:
                    rows.setdefault(name_from_csv(row[0]), []).append(row)
        return rows

    def rows(self, outcome: TagResult | TagFailure) -> list[list[Any]]:
        if isinstance(outcome, TagFailure):
            return []
        classes = outcome.classes
        path = csv_name(outcome.source)
        if self.options.events is not None:
            return [
                [path, e["start"], e["end"], e["label"], e["mid"], e["index"], e["peak"], e["mean"]]
                for e in self.options.sound_events(outcome)
            ]
        if self.options.timeline:
            end_of = outcome.duration
            return [
                [path, round(float(s), 6), round(min(float(e), end_of), 6), classes[i].name, classes[i].mid, i, score(w[i])]
                for s, e, w in zip(outcome.starts, outcome.ends, outcome.window_scores)
                for i in self.options.select(w)
            ]
        return [
            [path, rank, classes[i].name, classes[i].mid, i, score(outcome.scores[i])]
            for rank, i in enumerate(self.options.select(outcome.scores), start=1)
        ]

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._csv.writerows(self.rows(outcome))

    def write_existing(self, path: str, payload: Any) -> None:
        self._csv.writerows(payload)

    def close(self) -> None:
        if self._file is not None:
            self._file.commit()
        else:
            sys.stdout.flush()

    mergeable = True

    @classmethod
    def read_layout(cls, target: Path) -> Any:
        with open(target, encoding="utf-8", newline="") as stream:
            return tuple(next(csv.reader(stream), []))

    @classmethod
    def write_merged(cls, target: Path, layout: Any, records: list[tuple[str, Any]]) -> None:
        with atomic_text_file(target) as stream:
            rows = csv_writer(stream)
            rows.writerow(layout)
            for _, payload in records:
                rows.writerows(payload)


class JsonWriter(Writer):
    """One document: the model, the settings and a list of files."""

    name = "json"
    extension = ".json"

    def __init__(self, target: Path | None, *, options: OutputOptions, header: dict[str, Any]) -> None:
        super().__init__(target, options=options, header=header)
        self._files: list[dict[str, Any]] = []

    @classmethod
    def read_existing(cls, target: Path) -> dict[str, Any]:
        with open(target, encoding="utf-8") as stream:
            document = json.load(stream)
        return {record["path"]: record for record in document.get("files", [])}

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any]) -> None:
        with open(target, encoding="utf-8") as stream:
            check_settings(json.load(stream).get("settings", {}), settings)

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._files.append(file_record(outcome, self.options))

    def write_existing(self, path: str, payload: Any) -> None:
        self._files.append(payload)

    mergeable = True

    @classmethod
    def read_layout(cls, target: Path) -> Any:
        with open(target, encoding="utf-8") as stream:
            document = json.load(stream)
        return {k: v for k, v in document.items() if k != "files"}

    @classmethod
    def write_merged(cls, target: Path, layout: Any, records: list[tuple[str, Any]]) -> None:
        writer = cls(target, options=OutputOptions(), header=dict(layout or {}))
        for key, payload in records:
            writer.write_existing(key, payload)
        writer.close()

    def close(self) -> None:
        document = {**self.header, "files": self._files}
        if self.target is None:
            sys.stdout.write(json_text(document, indent=2) + "\n")
            sys.stdout.flush()
            return
        with atomic_text_file(self.target) as stream:
            stream.write(json_text(document, indent=2) + "\n")


class JsonlWriter(Writer):
    """One JSON object per input, written and flushed as soon as that input is done."""

    name = "jsonl"
    extension = ".jsonl"

    def __init__(self, target: Path | None, *, options: OutputOptions, header: dict[str, Any]) -> None:
        super().__init__(target, options=options, header=header)
        if target is None:
            self._stream: TextIO = sys.stdout
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            _drop_partial_last_line(target)
            self._stream = open(target, "a", encoding="utf-8")

    @classmethod
    def read_existing(cls, target: Path) -> dict[str, Any]:
        records: dict[str, Any] = {}
        with open(target, encoding="utf-8") as stream:
            for line in stream:
                if line.endswith("\n") and line.strip():
                    record = json.loads(line)
                    records[record["path"]] = record
        return records

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._emit(file_record(outcome, self.options))

    def write_existing(self, path: str, payload: Any) -> None:
        pass  # already in the file we append to

    def _emit(self, record: dict[str, Any]) -> None:
        self._stream.write(json_text(record) + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._stream is not sys.stdout:
            self._stream.close()

    mergeable = True

    @classmethod
    def read_layout(cls, target: Path) -> Any:
        return None  # one self-contained record a line

    @classmethod
    def write_merged(cls, target: Path, layout: Any, records: list[tuple[str, Any]]) -> None:
        # the records as they were read, into a new file (the writer itself would append)
        with atomic_text_file(target) as stream:
            for _, record in records:
                stream.write(json_text(record) + "\n")


class ParquetWriter(CsvWriter):
    """The CSV's long-form rows as one Parquet table (needs pyarrow), written whole when the run ends;
    the run's model and settings go in the file's metadata (key `dymn`)."""

    name = "parquet"
    extension = ".parquet"
    STRINGS, INTEGERS = ("path", "label", "mid"), ("rank", "index")

    def __init__(self, target: Path | None, *, options: OutputOptions, header: dict[str, Any]) -> None:
        Writer.__init__(self, target, options=options, header=header)
        self.validate(options=options, target=target, inputs=())
        _pyarrow()
        self._rows: list[list[Any]] = []
        self._columns = self.columns(options)

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any]) -> None:
        schema = _pyarrow().parquet.read_schema(target)
        check_columns(schema.names, cls.columns(options))
        check_settings(json.loads((schema.metadata or {}).get(b"dymn", b"{}")).get("settings", {}), settings)

    @classmethod
    def read_existing(cls, target: Path) -> dict[str, Any]:
        rows: dict[str, list[list[Any]]] = {}
        for row in zip(*_pyarrow().parquet.read_table(target).to_pydict().values()):
            rows.setdefault(name_from_csv(row[0]), []).append(list(row))
        return rows

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._rows += self.rows(outcome)

    def write_existing(self, path: str, payload: Any) -> None:
        self._rows += payload

    def close(self) -> None:
        self.write_table(self.target, columns=self._columns, rows=self._rows, header=self.header)

    @classmethod
    def read_layout(cls, target: Path) -> Any:
        schema = _pyarrow().parquet.read_schema(target)
        return (tuple(schema.names), (schema.metadata or {}).get(b"dymn"))

    @classmethod
    def write_merged(cls, target: Path, layout: Any, records: list[tuple[str, Any]]) -> None:
        columns, header = layout
        rows = [row for _, payload in records for row in payload]
        cls.write_table(target, columns=list(columns), rows=rows, header=json.loads(header) if header else {})

    @classmethod
    def write_table(cls, target: Path | None, *, columns: Sequence[str], rows: list[list[Any]], header: dict[str, Any]) -> None:
        pa = _pyarrow()
        types = {c: pa.string() if c in cls.STRINGS else pa.int32() if c in cls.INTEGERS else pa.float64() for c in columns}
        schema = pa.schema([(c, types[c]) for c in columns], metadata={"dymn": json.dumps(header, ensure_ascii=False)})
        table = pa.Table.from_arrays([pa.array([row[n] for row in rows], type=types[c]) for n, c in enumerate(columns)], schema=schema)
        if target is None:
            sink = pa.BufferOutputStream()
            pa.parquet.write_table(table, sink)
            sys.stdout.buffer.write(sink.getvalue().to_pybytes())
            sys.stdout.buffer.flush()
            return
        with atomic_binary_file(target) as stream:
            pa.parquet.write_table(table, stream)


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - makes pyarrow.parquet reachable
    except ImportError as error:
        raise UsageError("the parquet format needs pyarrow: pip install pyarrow (or 'dymn-cli[ray]')") from error
    return pyarrow


class TableWriter(Writer):
    """Rich tables for people: one block per input, best labels first."""

    name = "table"
    extension = ".txt"
    resumable = False

    def __init__(self, target: Path | None, *, options: OutputOptions, header: dict[str, Any]) -> None:
        super().__init__(target, options=options, header=header)
        from rich.console import Console

        self._buffer = io.StringIO() if target is not None else None
        self._console = Console(file=self._buffer, width=100) if self._buffer is not None else Console()

    def write(self, outcome: TagResult | TagFailure) -> None:
        from rich.table import Table

        if isinstance(outcome, TagFailure):
            return  # reported on stderr
        self._console.print(
            f"{printable(outcome.source)}  ({outcome.duration:.1f} s, {_plural(len(outcome.starts), 'window')})",
            markup=False, highlight=False, soft_wrap=True,
        )
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("label")
        table.add_column("score", justify="right")
        classes = outcome.classes
        for rank, i in enumerate(self.options.select(outcome.scores), start=1):
            table.add_row(str(rank), classes[i].name, f"{outcome.scores[i]:.4f}")
        self._console.print(table)
        if self.options.timeline:
            windows = Table(title="windows", title_justify="left")
            for column in ("start", "end", "labels"):
                windows.add_column(column, justify="left" if column == "labels" else "right")
            for s, e, w in zip(outcome.starts, outcome.ends, outcome.window_scores):
                picked = ", ".join(f"{classes[i].name} {w[i]:.2f}" for i in self.options.select(w))
                windows.add_row(f"{s:.2f}", f"{min(float(e), outcome.duration):.2f}", picked or "-")
            self._console.print(windows)
        if self.options.events is not None:
            events = Table(title="events", title_justify="left")
            for column in ("start", "end", "label", "peak", "mean"):
                events.add_column(column, justify="left" if column == "label" else "right")
            for e in self.options.sound_events(outcome):
                events.add_row(f"{e['start']:.2f}", f"{e['end']:.2f}", e["label"], f"{e['peak']:.4f}", f"{e['mean']:.4f}")
            self._console.print(events)

    def close(self) -> None:
        if self._buffer is not None and self.target is not None:
            with atomic_text_file(self.target) as stream:
                stream.write(self._buffer.getvalue())


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _drop_partial_last_line(target: Path) -> None:
    """A run killed mid-write may leave half a line at the end of a JSONL file: cut it off."""
    try:
        with open(target, "rb+") as stream:
            data = stream.read()
            if data and not data.endswith(b"\n"):
                stream.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass
