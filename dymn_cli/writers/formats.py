"""Output writers, one small class per format: CSV, JSON, JSON Lines, Parquet and the table.

Each writes through `dymn_cli.writers.targets` (see the README, Reliability): CSV, JSON, Parquet and
the table go to a temporary file beside the target and are renamed into place when the run ends (also
when it is interrupted: finished results are kept); JSON Lines is appended and flushed one whole
record at a time, so that a killed run keeps every finished line. Each can read an earlier output of
its format back one input at a time (bounded memory), with the model and settings that wrote it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from dymn_cli.errors import DymnError, OutputError, UsageError
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.terminal import printable
from dymn_cli.writers.base import OutputOptions, Writer, check_columns, file_record, score
from dymn_cli.writers.names import csv_name, csv_writer, json_text, name_from_csv
from dymn_cli.writers.targets import OutputFile, RecordLog, Target, read_settings_record, resolve_target, write_settings_record


class CsvWriter(Writer):
    """Long form: one row per (input, label); with a timeline, one row per (input, window, label);
    with events, one row per sound event. One table per file, so not a timeline and events at once.

    A CSV cannot hold the model and settings that wrote it: a hidden record beside the file
    (`.NAME.dymn.json`, with the file's SHA-256) says them, for `--resume` and `merge`.
    """

    name = "csv"
    extension = ".csv"
    CLIP_COLUMNS = ["path", "rank", "label", "mid", "index", "score"]
    TIMELINE_COLUMNS = ["path", "start", "end", "label", "mid", "index", "score"]
    EVENT_COLUMNS = ["path", "start", "end", "label", "mid", "index", "peak", "mean"]
    wide = True

    def __init__(
        self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False
    ) -> None:
        super().__init__(target, options=options, header=header, append=append)
        self.validate(options=options, target=self.target, inputs=())
        self._file = OutputFile(target if isinstance(target, Target) else resolve_target(target))
        if header:
            self._file.on_complete = lambda done: write_settings_record(done, header)
        self._csv = csv_writer(self._file)
        self._csv.writerow(self.columns(options))

    @classmethod
    def columns(cls, options: OutputOptions) -> list[str]:
        if options.wide:
            classes = options.class_table()
            return ["path", "duration", *(classes[i].name for i in options.wide_classes())]
        if options.events is not None:
            return cls.EVENT_COLUMNS
        return cls.TIMELINE_COLUMNS if options.timeline else cls.CLIP_COLUMNS

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any], model: str | None = None) -> None:
        with open(target, encoding="utf-8", newline="") as stream:
            check_columns(next(csv.reader(stream), []), cls.columns(options))
        super().check_resumable(target, options=options, settings=settings, model=model)

    @classmethod
    def read_header(cls, target: Path) -> dict[str, Any] | None:
        return read_settings_record(target)

    @classmethod
    def validate(cls, *, options: OutputOptions, target: Path | None, inputs: Sequence[Any]) -> None:
        if options.timeline and options.events is not None:
            raise UsageError("a CSV holds one table: ask for --timeline or --events, or write JSON/JSONL for both")
        if options.wide and (options.timeline or options.events is not None):
            raise UsageError("--wide is one row per input: not with --timeline or --events")

    @classmethod
    def iter_records(cls, target: Path, *, payloads: bool = True) -> Iterator[tuple[str, Any]]:
        with open(target, encoding="utf-8", newline="", errors="surrogateescape") as stream:
            reader = csv.reader(stream)
            next(reader, None)
            yield from _grouped((row for row in reader if row), payloads=payloads, key=name_from_csv)

    def rows(self, outcome: TagResult | TagFailure) -> list[list[Any]]:
        if isinstance(outcome, TagFailure):
            return []
        classes = outcome.classes
        path = csv_name(outcome.source)
        if self.options.wide:  # (a score under its class's threshold: an empty cell, null in Parquet)
            below = self.options.below_threshold(outcome.scores)
            cells = [None if below[i] else score(outcome.scores[i]) for i in self.options.wide_classes()]
            return [[path, round(outcome.duration, 6), *cells]]
        if self.options.events is not None:
            return [
                [path, e["start"], e["end"], e["label"], e["mid"], e["index"], e["peak"], e["mean"]]
                for e in self.options.sound_events(outcome)
            ]
        if self.options.timeline:
            starts, ends = outcome.window_times()
            return [
                [path, float(s), float(e), classes[i].name, classes[i].mid, i, score(w[i])]
                for s, e, w in zip(starts, ends, outcome.window_scores)
                for i in self.options.select(w)
            ]
        return [
            [path, rank, classes[i].name, classes[i].mid, i, score(outcome.scores[i])]
            for rank, i in enumerate(self.options.select(outcome.scores), start=1)
        ]

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._csv.writerows(self.rows(outcome))
        if not self._file.target.is_file:
            self._file.flush()  # a pipe's reader sees each input as it is done (and a closed one is noticed)

    def write_existing(self, path: str, payload: Any) -> None:
        self._csv.writerows(payload)

    def close(self) -> None:
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()

    mergeable = True

    @classmethod
    def read_layout(cls, target: Path) -> Any:
        with open(target, encoding="utf-8", newline="") as stream:
            return tuple(next(csv.reader(stream), [])), cls.read_header(target)

    @classmethod
    def options_for(cls, columns: Sequence[str] | None) -> OutputOptions:
        from dymn_cli.events import EventSettings

        for options in (OutputOptions(), OutputOptions(timeline=True), OutputOptions(events=EventSettings())):
            if columns is None or cls.columns(options) == list(columns):
                return options
        raise UsageError(f"cannot merge tables with the columns {','.join(columns)}")


def _grouped(rows: Iterable[list[Any]], *, payloads: bool, key: Callable[[str], str]) -> Iterator[tuple[str, Any]]:
    """Consecutive rows of one path as `(key(path), rows)` (a table's rows come grouped by input; the
    rows are kept as written, the key is the input's name: see `names.name_from_csv`)."""
    current: str | None = None
    group: list[list[Any]] = []
    for row in rows:
        if row[0] != current:
            if current is not None:
                yield key(current), group if payloads else None
            current, group = row[0], []
        if payloads:
            group.append(list(row))
    if current is not None:
        yield key(current), group if payloads else None


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
        first = _jsonl_line(header) if resolved.is_file and header else b""
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
        self._log.append(_jsonl_line(file_record(outcome, self.options)))

    def write_existing(self, path: str, payload: Any) -> None:
        if self.append:
            return  # already in the file this run appends to
        self._log.append(_jsonl_line(payload))

    def close(self) -> None:
        self._log.close()

    def discard(self) -> None:
        self._log.discard()


def _jsonl_line(record: dict[str, Any]) -> bytes:
    return (json_text(record) + "\n").encode("utf-8")


class ParquetWriter(CsvWriter):
    """The CSV's long-form rows as a Parquet table (needs pyarrow), written a row group at a time;
    the run's model and settings go in the file's metadata (key `dymn`)."""

    name = "parquet"
    extension = ".parquet"
    STRINGS, INTEGERS = ("path", "label", "mid"), ("rank", "index")
    ROW_GROUP = 65_536

    def __init__(
        self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False
    ) -> None:
        Writer.__init__(self, target, options=options, header=header, append=append)
        self.validate(options=options, target=self.target, inputs=())
        self._table = _ParquetTable(target, columns=self.columns(options), header=header)

    @classmethod
    def read_header(cls, target: Path) -> dict[str, Any] | None:
        schema = _pyarrow().parquet.read_schema(target)
        return json.loads((schema.metadata or {}).get(b"dymn", b"null"))

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any], model: str | None = None) -> None:
        schema = _pyarrow().parquet.read_schema(target)
        check_columns(schema.names, cls.columns(options))
        Writer.check_resumable.__func__(cls, target, options=options, settings=settings, model=model)  # type: ignore[attr-defined]

    @classmethod
    def read_layout(cls, target: Path) -> Any:
        return tuple(_pyarrow().parquet.read_schema(target).names), cls.read_header(target)

    @classmethod
    def iter_records(cls, target: Path, *, payloads: bool = True) -> Iterator[tuple[str, Any]]:
        table = _pyarrow().parquet.ParquetFile(target)
        columns = None if payloads else ["path"]

        def rows() -> Iterator[list[Any]]:
            for batch in table.iter_batches(batch_size=8192, columns=columns):
                yield from zip(*batch.to_pydict().values())

        yield from _grouped(rows(), payloads=payloads, key=name_from_csv)

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._table.add(self.rows(outcome))

    def write_existing(self, path: str, payload: Any) -> None:
        self._table.add(payload)

    def close(self) -> None:
        self._table.close()

    def discard(self) -> None:
        self._table.discard()

    @classmethod
    def write_table(cls, target: Path | None, *, columns: Sequence[str], rows: list[list[Any]], header: dict[str, Any]) -> None:
        table = _ParquetTable(target, columns=columns, header=header)
        table.add(rows)
        table.close()


class _ParquetTable:
    """Rows written to a Parquet file through `OutputFile`, a row group each `ParquetWriter.ROW_GROUP` rows."""

    def __init__(self, target: Path | Target | None, *, columns: Sequence[str], header: dict[str, Any]) -> None:
        pa = _pyarrow()
        self._types = [
            pa.string() if c in ParquetWriter.STRINGS else pa.int32() if c in ParquetWriter.INTEGERS else pa.float64()
            for c in columns
        ]
        self._schema = pa.schema(list(zip(columns, self._types)), metadata={"dymn": json_text(header)})
        self._file = OutputFile(target if isinstance(target, Target) else resolve_target(target))
        self._file.on_complete = None
        self._rows: list[list[Any]] = []
        try:
            self._writer = pa.parquet.ParquetWriter(self._file, self._schema)
        except OSError as error:
            self._file.discard()
            raise OutputError(f"{self._file.name}: cannot write: {error}") from None

    def add(self, rows: list[list[Any]]) -> None:
        self._rows += rows
        if len(self._rows) >= ParquetWriter.ROW_GROUP:
            self._flush(self._rows[: ParquetWriter.ROW_GROUP])
            self._rows = self._rows[ParquetWriter.ROW_GROUP :]

    def _flush(self, rows: list[list[Any]]) -> None:
        pa = _pyarrow()
        arrays = [pa.array([row[n] for row in rows], type=t) for n, t in enumerate(self._types)]
        try:
            self._writer.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        except DymnError:
            raise
        except OSError as error:
            self._file.discard()
            raise OutputError(f"{self._file.name}: cannot write: {error}") from None

    def close(self) -> None:
        while self._rows:
            rows, self._rows = self._rows[: ParquetWriter.ROW_GROUP], self._rows[ParquetWriter.ROW_GROUP :]
            self._flush(rows)
        try:
            self._writer.close()
        except DymnError:
            raise
        except OSError as error:
            self._file.discard()
            raise OutputError(f"{self._file.name}: cannot write: {error}") from None
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise UsageError("the parquet format needs pyarrow: pip install pyarrow (or 'dymn-cli[ray]')") from error
    return pyarrow


class TableWriter(Writer):
    """Rich tables for people: one block per input, best labels first."""

    name = "table"
    extension = ".txt"
    resumable = False

    def __init__(
        self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False
    ) -> None:
        super().__init__(target, options=options, header=header, append=append)
        self._file = OutputFile(target if isinstance(target, Target) else resolve_target(target))
        self._terminal = not self._file.target.is_file and is_terminal(self._file.target)

    def write(self, outcome: TagResult | TagFailure) -> None:
        from rich.console import Console
        from rich.table import Table

        if isinstance(outcome, TagFailure):
            return  # reported on stderr
        buffer = io.StringIO()
        console = Console(file=buffer, width=None if self._terminal else 100, force_terminal=self._terminal or None)
        console.print(
            f"{printable(outcome.source)}  ({outcome.duration:.1f} s, {_plural(len(outcome.starts), 'window')})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("label")
        table.add_column("score", justify="right")
        classes = outcome.classes
        for rank, i in enumerate(self.options.select(outcome.scores), start=1):
            table.add_row(str(rank), classes[i].name, f"{outcome.scores[i]:.4f}")
        console.print(table)
        if self.options.timeline:
            windows = Table(title="windows", title_justify="left")
            for column in ("start", "end", "labels"):
                windows.add_column(column, justify="left" if column == "labels" else "right")
            starts, ends = outcome.window_times()
            for s, e, w in zip(starts, ends, outcome.window_scores):
                picked = ", ".join(f"{classes[i].name} {w[i]:.2f}" for i in self.options.select(w))
                windows.add_row(f"{s:.2f}", f"{e:.2f}", picked or "-")
            console.print(windows)
        if self.options.events is not None:
            events = Table(title="events", title_justify="left")
            for column in ("start", "end", "label", "peak", "mean"):
                events.add_column(column, justify="left" if column == "label" else "right")
            for e in self.options.sound_events(outcome):
                events.add_row(f"{e['start']:.2f}", f"{e['end']:.2f}", e["label"], f"{e['peak']:.4f}", f"{e['mean']:.4f}")
            console.print(events)
        self._file.write(buffer.getvalue())
        if not self._file.target.is_file:
            self._file.flush()

    def close(self) -> None:
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()


def is_terminal(target: Target) -> bool:
    try:
        return os.isatty(target.descriptor) if target.descriptor is not None else False
    except OSError:
        return False


# --------------------------------------------------------------------------- reading a JSON document in pieces


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


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


WRITERS: dict[str, type[Writer]] = {w.name: w for w in (TableWriter, CsvWriter, JsonWriter, JsonlWriter, ParquetWriter)}
