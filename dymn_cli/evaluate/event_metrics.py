"""Event-level figures, as sed_eval defines them (Mesaros, Heittola, Virtanen, 2016).

- **Segment-based** (`segment_metrics`): each file's time axis is cut into segments of `resolution`
  seconds (1 s by default); a class is active in a segment when an event of it overlaps the segment (an
  event from `onset` to `offset` covers segments floor(onset / r) to ceil(offset / r) - 1, as sed_eval's
  event roll). Counted over every (segment, class): precision, recall and F1 summed over classes, and
  the error rate ER = (S + D + I) / N with, in each segment, S = min(FN, FP), D = max(0, FN - FP),
  I = max(0, FP - FN), N the active reference (segment, class) pairs.
- **Event-based** (`event_metrics`): an estimated event is correct when it has the class of a reference
  event of the same file whose onset is within `collar` seconds of its own (offsets are not judged),
  each reference event matched at most once, with a matching of the most pairs (sed_eval's default
  "optimal" matching, a maximum bipartite matching); precision, recall and F1 over all events (micro).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["Event", "EventFigures", "SegmentFigures", "event_metrics", "segment_metrics"]


@dataclass(frozen=True)
class Event:
    """A labelled span of one file: `file` any key that names the file, times in seconds."""

    file: str
    label: str
    onset: float
    offset: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.onset) and math.isfinite(self.offset)) or self.onset < 0 or self.offset < self.onset:
            raise ValueError(f"an event must have 0 <= onset <= offset, finite, got {self.onset} to {self.offset}")


@dataclass(frozen=True)
class SegmentFigures:
    precision: float
    recall: float
    f1: float
    error_rate: float
    substitutions: int
    deletions: int
    insertions: int
    n_reference: int
    resolution: float

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class EventFigures:
    precision: float
    recall: float
    f1: float
    true_positives: int
    n_reference: int
    n_estimated: int
    collar: float

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0  # (as sed_eval, whose denominators add an epsilon)


def _by_file(events: Iterable[Event]) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        grouped[event.file].append(event)
    return grouped


def _roll(events: list[Event], classes: dict[str, int], n_segments: int, resolution: float) -> np.ndarray:
    roll = np.zeros((n_segments, len(classes)), dtype=bool)
    for event in events:
        column = classes.get(event.label)
        if column is not None:
            roll[int(math.floor(event.onset / resolution)) : int(math.ceil(event.offset / resolution)), column] = True
    return roll


def segment_metrics(
    reference: Iterable[Event],
    estimated: Iterable[Event],
    *,
    classes: Iterable[str],
    files: Iterable[str] | None = None,
    resolution: float = 1.0,
) -> SegmentFigures:
    """Segment-based figures over `files` (default: those of `reference`; estimated events of other files
    are not counted) and the labels in `classes`."""
    if not resolution > 0:
        raise ValueError("the segment resolution must be a positive number of seconds")
    columns = {label: n for n, label in enumerate(dict.fromkeys(classes))}
    truth, found = _by_file(reference), _by_file(estimated)
    tp = fp = fn = substitutions = deletions = insertions = n_reference = 0
    for file in truth if files is None else dict.fromkeys(files):
        events, theirs = truth.get(file, []), found.get(file, [])
        end = max((e.offset for e in [*events, *theirs]), default=0.0)
        n_segments = max(1, int(math.ceil(end / resolution)))
        ref = _roll(events, columns, n_segments, resolution)
        est = _roll(theirs, columns, n_segments, resolution)
        segment_fn = (ref & ~est).sum(axis=1)
        segment_fp = (est & ~ref).sum(axis=1)
        tp += int((ref & est).sum())
        fp += int(segment_fp.sum())
        fn += int(segment_fn.sum())
        substitutions += int(np.minimum(segment_fn, segment_fp).sum())
        deletions += int(np.maximum(0, segment_fn - segment_fp).sum())
        insertions += int(np.maximum(0, segment_fp - segment_fn).sum())
        n_reference += int(ref.sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return SegmentFigures(
        precision=precision,
        recall=recall,
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        error_rate=(substitutions + deletions + insertions) / n_reference if n_reference else math.nan,
        substitutions=substitutions,
        deletions=deletions,
        insertions=insertions,
        n_reference=n_reference,
        resolution=resolution,
    )


def _matches(reference: list[Event], estimated: list[Event], collar: float) -> int:
    """The most (reference, estimated) pairs with onsets within `collar`, each event in one pair at most."""
    if not reference or not estimated:
        return 0
    ref_onsets = np.array([e.onset for e in reference])[:, None]
    est_onsets = np.array([e.onset for e in estimated])[None, :]
    # Compared as sed_eval compares them, without a tolerance: onsets a decimal collar apart fall either
    # side by rounding (|2.2 - 2.0| > 0.2, |1.2 - 1.0| <= 0.2) there too, and the figures stay sed_eval's.
    allowed = np.abs(ref_onsets - est_onsets) <= collar
    rows, cols = linear_sum_assignment(allowed, maximize=True)
    return int(allowed[rows, cols].sum())


def event_metrics(
    reference: Iterable[Event],
    estimated: Iterable[Event],
    *,
    classes: Iterable[str],
    files: Iterable[str] | None = None,
    collar: float = 0.2,
) -> EventFigures:
    """Event-based figures with an onset collar, over `files` (default: those of `reference`) and the
    labels in `classes`."""
    if not collar >= 0:
        raise ValueError("the onset collar must be a number of seconds at least 0")
    wanted = set(classes)
    truth, found = _by_file(e for e in reference if e.label in wanted), _by_file(e for e in estimated if e.label in wanted)
    true_positives = n_reference = n_estimated = 0
    for file in truth if files is None else dict.fromkeys(files):
        events, theirs = truth.get(file, []), found.get(file, [])
        n_reference += len(events)
        n_estimated += len(theirs)
        for label in {e.label for e in events} | {e.label for e in theirs}:
            true_positives += _matches([e for e in events if e.label == label], [e for e in theirs if e.label == label], collar)
    return EventFigures(
        precision=_ratio(true_positives, n_estimated),
        recall=_ratio(true_positives, n_reference),
        f1=_ratio(2 * true_positives, n_reference + n_estimated),
        true_positives=true_positives,
        n_reference=n_reference,
        n_estimated=n_estimated,
        collar=collar,
    )
