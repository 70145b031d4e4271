"""Output writers, one small class per format, looked up by name or by a file's extension.

Every writer writes through `dymn_cli.targets`, which holds the rules (see the README, Reliability):
CSV, JSON, Parquet and the table go to a temporary file beside the target and are renamed into place
when the run ends (also when it is interrupted: finished results are kept); JSON Lines is appended
and flushed one input at a time, so that a killed run keeps every finished line. Each output says
which model and settings wrote it, so that `--resume` never mixes the records of two kinds of run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO

import numpy as np

from .errors import DymnError, OutputError, UsageError
from .events import EventSettings, detect_events
from .labels import audioset_classes
from .names import csv_name, csv_writer, json_text, name_from_csv
from .results import TagFailure, TagResult, rank_classes
from .targets import (
    OutputFile,
    RecordLog,
    Target,
    read_settings_record,
    resolve_target,
    write_settings_record,
)
from .terminal import printable

SCORE_DECIMALS = 8


@dataclass(frozen=True)
class OutputOptions:
    """Which labels an output keeps."""

    top: int | None = 10  # None: all classes
    threshold: float | None = None
    timeline: bool = False
    classes: Sequence[int] | None = None  # restrict to these class indices (None: all)
    events: EventSettings | None = None  # also report sound events (see dymn_cli.events)

    def select(self, scores: np.ndarray) -> list[int]:
        """Class indices to report for one score vector, best first."""
        return rank_classes(scores, top=self.top, threshold=self.threshold, classes=self.classes)

    def sound_events(self, result: TagResult) -> list[dict[str, Any]]:
        """The `events` entries of one result (all selected classes; `top` does not apply)."""
        settings = self.events or EventSettings()
        found = detect_events(result, threshold=settings.threshold, min_duration=settings.min_duration, classes=self.classes)
        return [e.as_dict(decimals=SCORE_DECIMALS) for e in found]

    def settings(self) -> dict[str, Any]:
        """What the options were, for the header of an output."""
        described: dict[str, Any] = {"top": self.top, "threshold": self.threshold}
        if self.timeline:
            described["timeline"] = True
        if self.classes is not None:
            described["n_classes"] = len(self.classes)
        if self.events is not None:
            described["events"] = {"threshold": self.events.threshold, "min_duration": self.events.min_duration}
        return described


def _check_columns(found: Sequence[str], expected: Sequence[str]) -> None:
    if list(found) != list(expected):
        raise ValueError(f"its columns are {','.join(found) or 'missing'}, this run writes {','.join(expected)}")


def _check_settings(earlier: dict[str, Any], settings: dict[str, Any]) -> None:
    """An earlier output continued by this run must have been written with the same settings (its
    sample rate is the model's, known only once the model loads, and is not compared)."""
    differing = [key for key in {**earlier, **settings} if key != "sample_rate" and earlier.get(key) != settings.get(key)]
    if differing:
        described = ", ".join(f"{key} {earlier.get(key)} (this run: {settings.get(key)})" for key in differing)
        raise ValueError(f"it was written with other settings: {described}")


def check_header(header: dict[str, Any] | None, *, settings: dict[str, Any], model: str | None) -> None:
    """Raise `ValueError` unless an earlier output's header (model and settings) is this run's."""
    if header is None:
        raise ValueError("it holds no record of the model and settings that wrote it (not written by this version of dymn-tag)")
    _check_settings(header.get("settings", {}), settings)
    if model is not None and header.get("model") != model:
        raise ValueError(f"it was written by the model {header.get('model')} (this run: {model})")


def score(value: float) -> float:
    return round(float(value), SCORE_DECIMALS)


def label_entries(scores: np.ndarray, options: OutputOptions) -> list[dict[str, Any]]:
    classes = audioset_classes()
    return [
        {"label": classes[i].name, "mid": classes[i].mid, "index": i, "score": score(scores[i])}
        for i in options.select(scores)
    ]


def file_record(outcome: TagResult | TagFailure, options: OutputOptions) -> dict[str, Any]:
    """The JSON/JSONL record of one input."""
    if isinstance(outcome, TagFailure):
        return {"path": outcome.source, "error": outcome.reason}
    record: dict[str, Any] = {
        "path": outcome.source,
        "duration": round(outcome.duration, 6),
        "n_windows": len(outcome.starts),
        "labels": label_entries(outcome.scores, options),
    }
    if options.timeline:
        starts, ends = outcome.window_times()
        record["windows"] = [
            {"start": float(s), "end": float(e), "labels": label_entries(w, options)}
            for s, e, w in zip(starts, ends, outcome.window_scores)
        ]
    if options.events is not None:
        record["events"] = options.sound_events(outcome)
    if outcome.warnings:  # a damaged input: what could not be decoded (the labels are of the rest)
        record["warnings"] = list(outcome.warnings)
    return record


class Writer:
    """Base of the output writers. `target` None means standard output.

    Each writer writes through `dymn_cli.targets` (never a broken or mixed file under the real name),
    and can say, in bounded memory, what an earlier output of its format holds: its header (the
    model and settings that wrote it) and its records, one input at a time. With `append`, the
    writer continues an earlier output (`--resume`) instead of replacing it.
    """

    name: ClassVar[str]
    extension: ClassVar[str]
    resumable: ClassVar[bool] = True
    per_input: ClassVar[bool] = False  # one file per input; `target` is then a folder (None: beside each input)

    def __init__(self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False) -> None:
        self.target = target.path if isinstance(target, Target) else target
        self.options = options
        self.header = header
        self.append = append

    @classmethod
    def validate(cls, *, options: OutputOptions, target: Path | None, inputs: Sequence[Any]) -> None:
        """Raise `UsageError` for options or inputs this format cannot write, before any model loads."""

    @classmethod
    def read_header(cls, target: Path) -> dict[str, Any] | None:
        """The model and settings an earlier output was written with (None: it does not say)."""
        return None

    @classmethod
    def iter_records(cls, target: Path, *, payloads: bool = True) -> Iterator[tuple[str, Any]]:
        """`(path, what was written for it)` for each input an earlier output recorded, read as it goes
        (`payloads=False`: the payloads are not needed, e.g. None)."""
        raise NotImplementedError

    @classmethod
    def read_existing(cls, target: Path) -> dict[str, Any]:
        """Inputs already recorded in an earlier output: path -> what was written for it."""
        return dict(cls.iter_records(target))

    @classmethod
    def carries_over(cls) -> bool:
        """Whether `--resume` rewrites the earlier records (True) or appends to the file holding them."""
        return True

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any], model: str | None = None) -> None:
        """Raise `ValueError` if an earlier output cannot be continued by a run with these `options`,
        `settings` (the header's settings that are known before the model loads) and `model` (None:
        not known yet)."""
        check_header(cls.read_header(target), settings=settings, model=model)

    def write(self, outcome: TagResult | TagFailure) -> None:
        raise NotImplementedError

    def write_existing(self, path: str, payload: Any) -> None:
        """Carry over what an earlier run recorded for `path` (for `--resume`)."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish the output; called at the end of every run, interrupted or not."""

    def discard(self) -> None:
        """Give up (a write error, a closed pipe): the target keeps what it held before, or (JSON
        Lines) the whole records written so far."""


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

    def __init__(self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False) -> None:
        super().__init__(target, options=options, header=header, append=append)
        self.validate(options=options, target=self.target, inputs=())
        self._file = OutputFile(target if isinstance(target, Target) else resolve_target(target))
        if header:
            self._file.on_complete = lambda done: write_settings_record(done, header)
        self._csv = csv_writer(self._file)
        self._csv.writerow(self.columns(options))

    @classmethod
    def columns(cls, options: OutputOptions) -> list[str]:
        if options.events is not None:
            return cls.EVENT_COLUMNS
        return cls.TIMELINE_COLUMNS if options.timeline else cls.CLIP_COLUMNS

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any], model: str | None = None) -> None:
        with open(target, encoding="utf-8", newline="") as stream:
            _check_columns(next(csv.reader(stream), []), cls.columns(options))
        super().check_resumable(target, options=options, settings=settings, model=model)

    @classmethod
    def read_header(cls, target: Path) -> dict[str, Any] | None:
        return read_settings_record(target)

    @classmethod
    def validate(cls, *, options: OutputOptions, target: Path | None, inputs: Sequence[Any]) -> None:
        if options.timeline and options.events is not None:
            raise UsageError("a CSV holds one table: ask for --timeline or --events, or write JSON/JSONL for both")

    @classmethod
    def iter_records(cls, target: Path, *, payloads: bool = True) -> Iterator[tuple[str, Any]]:
        with open(target, encoding="utf-8", newline="", errors="surrogateescape") as stream:
            reader = csv.reader(stream)
            next(reader, None)
            yield from _grouped((row for row in reader if row), payloads=payloads, key=name_from_csv)

    def rows(self, outcome: TagResult | TagFailure) -> list[list[Any]]:
        if isinstance(outcome, TagFailure):
            return []
        classes = audioset_classes()
        path = csv_name(outcome.source)
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
    _INDENT = "\n    "

    def __init__(self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False) -> None:
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

    def __init__(self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False) -> None:
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

    def __init__(self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False) -> None:
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
        _check_columns(schema.names, cls.columns(options))
        Writer.check_resumable.__func__(cls, target, options=options, settings=settings, model=model)  # type: ignore[attr-defined]

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
        self._types = [pa.string() if c in ParquetWriter.STRINGS else pa.int32() if c in ParquetWriter.INTEGERS else pa.float64()
                       for c in columns]
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

    def __init__(self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False) -> None:
        super().__init__(target, options=options, header=header, append=append)
        self._file = OutputFile(target if isinstance(target, Target) else resolve_target(target))
        self._terminal = not self._file.target.is_file and _is_terminal(self._file.target)

    def write(self, outcome: TagResult | TagFailure) -> None:
        from rich.console import Console
        from rich.table import Table

        if isinstance(outcome, TagFailure):
            return  # reported on stderr
        buffer = io.StringIO()
        console = Console(file=buffer, width=None if self._terminal else 100, force_terminal=self._terminal or None)
        console.print(
            f"{printable(outcome.source)}  ({outcome.duration:.1f} s, {_plural(len(outcome.starts), 'window')})",
            markup=False, highlight=False, soft_wrap=True,
        )
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("label")
        table.add_column("score", justify="right")
        classes = audioset_classes()
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


def _is_terminal(target: Target) -> bool:
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
    if buffer[position:position + 1] == "}":
        return
    while True:
        key = value()
        skip(":")
        if key == "files":
            skip("[")
            peek_value()
            if buffer[position:position + 1] == "]":
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


def writer_class(format: str | None, target: Path | None, *, stdout_is_terminal: bool) -> type[Writer]:
    """Explicit format first, then the output file's extension, then table (terminal) or JSONL (pipe)."""
    if format is not None:
        if format not in WRITERS:
            raise UsageError(f"unknown format {format!r}: use one of {', '.join(WRITERS)}")
        return WRITERS[format]
    if target is not None:
        if target.is_dir():
            raise UsageError(f"{target}: is a folder: name a file to write")
        by_extension = {w.extension: w for w in WRITERS.values() if w is not TableWriter and not w.per_input}
        suffix = target.suffix.lower()
        if suffix in by_extension:
            return by_extension[suffix]
        stream = resolve_target(target)
        if stream.is_file:
            raise UsageError(f"{target}: cannot tell the format from the extension {suffix or '(none)'}: add --format")
        # a pipe or device named without an extension (/dev/stdout, a FIFO): as for standard output
        return TableWriter if _is_terminal(stream) or (stream.descriptor is None and _is_tty_path(target)) else JsonlWriter
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


# The per-input event exports (audacity, raven) build on Writer and register themselves in WRITERS.
from . import exports as _exports  # noqa: F401
