"""What every output writer shares: which labels an output keeps (`OutputOptions`), the JSON record
of one input, and the `Writer` base class that formats, part files and editor exports subclass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dymn_cli.audioset.vocabulary import AUDIOSET, Vocabulary
from dymn_cli.events import EventSettings, detect_events
from dymn_cli.results import TagFailure, TagResult, rank_classes

SCORE_DECIMALS = 8


@dataclass(frozen=True)
class OutputOptions:
    """Which labels an output keeps."""

    top: int | None = 10  # None: all classes
    threshold: float | None = None
    timeline: bool = False
    classes: Sequence[int] | None = None  # restrict to these class indices (None: all)
    events: EventSettings | None = None  # also report sound events (see dymn_cli.events)
    vocabulary: Vocabulary | None = None  # the classes the run reports (None: the AudioSet classes)

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
        if self.vocabulary is not None and self.vocabulary != Vocabulary.audioset():
            # (a run with a head: its classes, so that --resume never mixes outputs of other classes)
            described["head_classes"] = [c.name for c in self.vocabulary if c.source != AUDIOSET]
            described["audioset"] = self.vocabulary.has_audioset
        return described


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


def score(value: float) -> float:
    return round(float(value), SCORE_DECIMALS)


def label_entries(scores: np.ndarray, options: OutputOptions, classes: Vocabulary) -> list[dict[str, Any]]:
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
        "labels": label_entries(outcome.scores, options, outcome.classes),
    }
    if options.timeline:
        record["windows"] = [
            {"start": round(float(s), 6), "end": round(min(float(e), outcome.duration), 6), "labels": label_entries(w, options, outcome.classes)}
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

    # `dymn-tag merge` and part files (--output-dir) take the formats that can read their own files back.
    mergeable: ClassVar[bool] = False

    @classmethod
    def read_layout(cls, target: Path) -> Any:
        """What must agree between outputs merged into one (columns, header); None if nothing must."""
        raise NotImplementedError

    @classmethod
    def write_merged(cls, target: Path, layout: Any, records: list[tuple[str, Any]]) -> None:
        """Write `records` (path, what `read_existing` gave for it), in this order, as one output."""
        raise NotImplementedError
