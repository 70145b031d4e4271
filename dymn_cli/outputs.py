"""Output writers, one small class per format, looked up by name or by a file's extension.

Files are never left half-written: CSV, JSON and Parquet go to a temporary file beside the target and are
renamed into place when the run ends (also when it is interrupted: finished results are kept);
JSONL is appended and flushed one input at a time, so that a killed run keeps every finished line.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO

import numpy as np

from .atomic import new_file_mode
from .errors import UsageError
from .events import EventSettings, detect_events
from .labels import audioset_classes
from .names import csv_name, csv_writer, json_text, name_from_csv
from .results import TagFailure, TagResult, rank_classes
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
        record["windows"] = [
            {"start": round(float(s), 6), "end": round(min(float(e), outcome.duration), 6), "labels": label_entries(w, options)}
            for s, e, w in zip(outcome.starts, outcome.ends, outcome.window_scores)
        ]
    if options.events is not None:
        record["events"] = options.sound_events(outcome)
    if outcome.warnings:  # a damaged input: what could not be decoded (the labels are of the rest)
        record["warnings"] = list(outcome.warnings)
    return record


class Writer:
    """Base of the output writers. `target` None means standard output."""

    name: ClassVar[str]
    extension: ClassVar[str]
    resumable: ClassVar[bool] = True
    per_input: ClassVar[bool] = False  # one file per input; `target` is then a folder (None: beside each input)

    def __init__(self, target: Path | None, *, options: OutputOptions, header: dict[str, Any]) -> None:
        self.target = target
        self.options = options
        self.header = header

    @classmethod
    def validate(cls, *, options: OutputOptions, target: Path | None, inputs: Sequence[Any]) -> None:
        """Raise `UsageError` for options or inputs this format cannot write, before any model loads."""

    @classmethod
    def read_existing(cls, target: Path) -> dict[str, Any]:
        """Inputs already recorded in an earlier output: path -> what was written for it."""
        raise NotImplementedError

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any]) -> None:
        """Raise `ValueError` if an earlier output cannot be continued by a run with these `options` and
        `settings` (the header's settings that are known before the model loads)."""

    def write(self, outcome: TagResult | TagFailure) -> None:
        raise NotImplementedError

    def write_existing(self, path: str, payload: Any) -> None:
        """Carry over what an earlier run recorded for `path` (for `--resume`)."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish the output; called at the end of every run, interrupted or not."""


class _AtomicTextFile:
    """A text file written to a temporary name and renamed into place on `commit`."""

    def __init__(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, self.temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.chmod(self.temp_name, new_file_mode())  # mkstemp's 0o600 would hide the output from other users
        self.stream: TextIO = os.fdopen(handle, "w", encoding="utf-8", newline="")
        self.target = target

    def commit(self) -> None:
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        os.replace(self.temp_name, self.target)


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
        self._file = _AtomicTextFile(target) if target is not None else None
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
            _check_columns(next(csv.reader(stream), []), cls.columns(options))

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
        classes = audioset_classes()
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
            _check_settings(json.load(stream).get("settings", {}), settings)

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._files.append(file_record(outcome, self.options))

    def write_existing(self, path: str, payload: Any) -> None:
        self._files.append(payload)

    def close(self) -> None:
        document = {**self.header, "files": self._files}
        if self.target is None:
            sys.stdout.write(json_text(document, indent=2) + "\n")
            sys.stdout.flush()
            return
        atomic = _AtomicTextFile(self.target)
        atomic.stream.write(json_text(document, indent=2) + "\n")
        atomic.commit()


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
        _check_columns(schema.names, cls.columns(options))
        _check_settings(json.loads((schema.metadata or {}).get(b"dymn", b"{}")).get("settings", {}), settings)

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
        from .atomic import atomic_binary_file

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
        classes = audioset_classes()
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
            atomic = _AtomicTextFile(self.target)
            atomic.stream.write(self._buffer.getvalue())
            atomic.commit()


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


WRITERS: dict[str, type[Writer]] = {w.name: w for w in (TableWriter, CsvWriter, JsonWriter, JsonlWriter, ParquetWriter)}


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


# The per-input event exports (audacity, raven) build on Writer and register themselves in WRITERS.
from . import exports as _exports  # noqa: E402,F401
