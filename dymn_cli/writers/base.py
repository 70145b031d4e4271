"""What every output writer shares: which labels an output keeps (`OutputOptions`), the JSON record
of one input, and the `Writer` base class that formats, part files and editor exports subclass.

Every writer writes through `dymn_cli.writers.targets`, which holds the rules (README, Reliability):
never a broken or mixed file under the real name, streams written in place, links written through.
Each output says which model and settings wrote it, so that `--resume` and `merge` never mix the
records of two kinds of run."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dymn_cli.audioset.thresholds import ClassThresholds
from dymn_cli.audioset.vocabulary import AUDIOSET, Vocabulary
from dymn_cli.errors import UsageError
from dymn_cli.events import EventSettings, detect_events, strongest_labels
from dymn_cli.models.identity import same_label
from dymn_cli.results import TagFailure, TagResult, rank_classes
from dymn_cli.writers.targets import Target

SCORE_DECIMALS = 8


@dataclass(frozen=True)
class OutputOptions:
    """Which labels an output keeps."""

    top: int | None = 10  # None: all classes
    threshold: float | None = None
    timeline: bool = False
    classes: Sequence[int] | None = None  # restrict to these class indices (None: all)
    events: EventSettings | None = None  # also report sound events (see dymn_cli.events)
    wide: bool = False  # one row per input, a column per class (csv, parquet); scores under the threshold left empty
    vocabulary: Vocabulary | None = None  # the classes the run reports (None: the AudioSet classes)
    thresholds: ClassThresholds | None = None  # classes with a threshold of their own (--thresholds); others: `threshold`

    @functools.cached_property
    def levels(self) -> float | np.ndarray | None:
        """The score each class needs to be reported: `threshold` (None: any), or `[K]` with `thresholds`."""
        if self.thresholds is None:
            return self.threshold
        return self.thresholds.levels(len(self.class_table()), default=self.threshold)

    def select(self, scores: np.ndarray) -> list[int]:
        """Class indices to report for one score vector, best first."""
        return rank_classes(scores, top=self.top, threshold=self.levels, classes=self.classes)

    def below_threshold(self, scores: np.ndarray) -> np.ndarray:
        """Which classes of one score vector score under their threshold (a wide table leaves them empty)."""
        if self.levels is None:
            return np.zeros(len(scores), dtype=bool)
        return np.asarray(scores) < self.levels

    def sound_events(self, result: TagResult) -> list[dict[str, Any]]:
        """The `events` entries of one result: those of the `top` labels with the highest peak."""
        settings = self.events or EventSettings()
        levels = settings.levels(len(self.class_table()))
        found = detect_events(result, threshold=levels, min_duration=settings.min_duration, classes=self.classes)
        return [e.as_dict(decimals=SCORE_DECIMALS) for e in strongest_labels(found, self.top)]

    def settings(self) -> dict[str, Any]:
        """What the options were, for the header of an output."""
        described: dict[str, Any] = {"top": self.top, "threshold": self.threshold}
        if self.thresholds is not None:
            described["thresholds"] = self.thresholds.source
        if self.timeline:
            described["timeline"] = True
        if self.classes is not None:
            described["n_classes"] = len(self.classes)
        if self.events is not None:
            described["events"] = {"threshold": self.events.threshold, "min_duration": self.events.min_duration}
        if self.wide:
            described["wide"] = True
        if self.vocabulary is not None and self.vocabulary != Vocabulary.audioset():
            # (a run with a head: its classes, so that --resume never mixes outputs of other classes)
            described["head_classes"] = [c.name for c in self.vocabulary if c.source != AUDIOSET]
            described["audioset"] = self.vocabulary.has_audioset
        return described

    def wide_classes(self) -> list[int]:
        """The class columns of a wide table: the selected classes, in index order."""
        return sorted(self.classes) if self.classes is not None else list(range(len(self.class_table())))

    def class_table(self) -> tuple[Any, ...]:
        """The classes the run reports, index by index (the AudioSet classes without a head)."""
        return (self.vocabulary or Vocabulary.audioset()).classes


def check_columns(found: Sequence[str], expected: Sequence[str]) -> None:
    if list(found) != list(expected):
        raise ValueError(f"its columns are {','.join(found) or 'missing'}, this run writes {','.join(expected)}")


def check_settings(earlier: dict[str, Any], settings: dict[str, Any]) -> None:
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
    check_settings(header.get("settings", {}), settings)
    if model is not None and not same_label(header.get("model"), model):
        raise ValueError(f"it was written by the model {header.get('model')} (this run: {model})")


def score(value: float) -> float:
    return round(float(value), SCORE_DECIMALS)


def label_entries(scores: np.ndarray, options: OutputOptions, classes: Vocabulary) -> list[dict[str, Any]]:
    return [
        {"label": classes[i].name, "mid": classes[i].mid, "index": i, "score": score(scores[i])} for i in options.select(scores)
    ]


def file_record(outcome: TagResult | TagFailure, options: OutputOptions) -> dict[str, Any]:
    """The JSON/JSONL record of one input."""
    if isinstance(outcome, TagFailure):
        return {"path": outcome.source, "error": outcome.reason}
    record: dict[str, Any] = {
        "path": outcome.source,
        "duration": round(outcome.duration, 6),
        "n_windows": len(outcome.starts),
        "labels": label_entries(outcome.scores, options, outcome.classes),
    }
    if options.timeline:
        starts, ends = outcome.window_times()
        record["windows"] = [
            {"start": float(s), "end": float(e), "labels": label_entries(w, options, outcome.classes)}
            for s, e, w in zip(starts, ends, outcome.window_scores)
        ]
    if options.events is not None:
        record["events"] = options.sound_events(outcome)
    if outcome.warnings:  # a damaged input: what could not be decoded (the labels are of the rest)
        record["warnings"] = list(outcome.warnings)
    return record


class Writer:
    """Base of the output writers. `target` None means standard output.

    Each writer writes through `dymn_cli.writers.targets` (never a broken or mixed file under the real name),
    and can say, in bounded memory, what an earlier output of its format holds: its header (the
    model and settings that wrote it) and its records, one input at a time. With `append`, the
    writer continues an earlier output (`--resume`) instead of replacing it.
    """

    name: ClassVar[str]
    extension: ClassVar[str]
    resumable: ClassVar[bool] = True
    per_input: ClassVar[bool] = False  # one file per input; `target` is then a folder (None: beside each input)
    wide: ClassVar[bool] = False  # writes the one-row-per-input table of --wide

    def __init__(
        self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False
    ) -> None:
        self.target = target.path if isinstance(target, Target) else target
        self.options = options
        self.header = header
        self.append = append

    @classmethod
    def validate(cls, *, options: OutputOptions, target: Path | None, inputs: Sequence[Any]) -> None:
        """Raise `UsageError` for options or inputs this format cannot write, before any model loads."""
        if options.wide and not cls.wide:
            raise UsageError(f"--wide writes csv or parquet, not {cls.name}")

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

    # `dymn-tag merge` and part files (--output-dir) take the formats that can read their own files back.
    mergeable: ClassVar[bool] = False

    @classmethod
    def read_layout(cls, target: Path) -> Any:
        """What must agree between outputs merged into one: `(columns, header)`, the columns of a
        table (None for JSON and JSON Lines) and the model and settings (None: the file does not say)."""
        return None, cls.read_header(target)

    @classmethod
    def options_for(cls, columns: Sequence[str] | None) -> OutputOptions:
        """Output options that write a table with these columns (the default options otherwise)."""
        return OutputOptions()

    @classmethod
    def write_merged(cls, target: Any, layout: Any, records: list[tuple[str, Any]]) -> None:
        """Write `records` (path, what `iter_records` gave for it), in this order, as one output of
        `layout`, by the same rules as a run's output (whole or not at all)."""
        columns, header = layout
        writer = cls(target, options=cls.options_for(columns), header=header or {})
        try:
            for key, payload in records:
                writer.write_existing(key, payload)
        except BaseException:
            writer.discard()
            raise
        writer.close()
