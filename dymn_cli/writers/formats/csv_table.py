"""CSV: the long-form table (or the wide one), with the hidden settings record beside the file."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dymn_cli.errors import UsageError
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.writers.base import OutputOptions, Writer, check_columns, score
from dymn_cli.writers.names import csv_name, csv_writer, name_from_csv
from dymn_cli.writers.output_file import OutputFile
from dymn_cli.writers.settings_record import read_settings_record, write_settings_record
from dymn_cli.writers.targets import Target, resolve_target


class CsvWriter(Writer):
    """Long form: one row per (input, label); with a timeline, one row per (input, window, label);
    with events, one row per sound event. One table per file, so not a timeline and events at once.

    A CSV cannot hold the model and settings that wrote it: a hidden record beside the file
    (`.NAME.dymn.json`, with the file's SHA-256) says them, for `--resume` and `merge`.
    """

    name = "csv"
    kind = "CSV"  # (as messages name it)
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
            return ["path", "duration", *(classes[i].column for i in options.wide_classes())]
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
            raise UsageError(f"a {cls.kind} file holds one table: ask for --timeline or --events, or write JSON/JSONL for both")
        if options.wide and (options.timeline or options.events is not None):
            raise UsageError("--wide is one row per input: not with --timeline or --events")

    @classmethod
    def iter_records(cls, target: Path, *, payloads: bool = True) -> Iterator[tuple[str, Any]]:
        with open(target, encoding="utf-8", newline="", errors="surrogateescape") as stream:
            reader = csv.reader(stream)
            next(reader, None)
            yield from grouped_rows((row for row in reader if row), payloads=payloads, key=name_from_csv)

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


def grouped_rows(rows: Iterable[list[Any]], *, payloads: bool, key: Callable[[str], str]) -> Iterator[tuple[str, Any]]:
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
