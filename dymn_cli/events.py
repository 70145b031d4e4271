"""Sound events: time segments where a label is active, cut from the window scores of a `TagResult`.

How a segment's edges are found
-------------------------------
The tagger scores overlapping windows (`window` seconds every `hop` seconds). Cutting events from
whole windows would smear every event by up to a window on each side, so the time axis is first cut
into *slots* at every window start and end (the hop grid: with a 10 s window every 1 s, slots are
1 s wide), clipped to the file's duration. A slot's score for a label is the **lowest** score of the
windows that cover the whole slot: a slot is active only when every window covering it is.

Why the minimum: a tagger trained on AudioSet's clip-level labels gives a window a high score when
the sound is present anywhere in it. Take a sound from `a` to `b`. A slot inside `[a, b]` is covered
only by windows that contain part of the sound, so all of them score high and the slot is active. A
slot more than one hop before `a` (or after `b`) is covered by at least one window that ends before
`a` (or starts after `b`), which scores low. So the active slots span `[a, b]` give or take less
than one hop at each end, whatever the window length: the true edges are recovered to within one hop.
(Crediting each window to the slot at its centre, or averaging, would move the edges out by up to
half a window.) With `hop == window` (the default) slots are the windows themselves and a slot's
score is its window's score. The price of the rule: a window that misses the sound silences every
slot it covers.

At the ends of a file fewer windows cover a slot, and the windows cannot tell where a sound begins
if it begins before the first window ends (every window that covers the start then contains it),
nor where it ends if it ends after the last window starts: such an event is reported from the
file's start (to the file's end), the widest span the scores allow.

For each label, consecutive active slots (score at least `threshold`) are merged into one event: it
starts where its first slot starts and ends where its last slot ends (never past the end of the
file). `peak` is the highest slot score in the event and `mean` the slot scores' mean weighted by
the slots' durations. Events shorter than `min_duration` are dropped. Time not covered by any
window (when `hop > window`) is never part of an event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dymn_cli.audioset.vocabulary import LabelClass, Vocabulary

__all__ = ["DEFAULT_THRESHOLD", "EventSettings", "SlotScores", "SoundEvent", "detect_events", "events_from_scores", "slot_scores"]

DEFAULT_THRESHOLD = 0.5
_EPS = 1e-9  # seconds: window edges computed from sample counts agree to far better than this


@dataclass(frozen=True)
class EventSettings:
    """How events are cut: the score a slot needs, and the shortest event kept (seconds)."""

    threshold: float = DEFAULT_THRESHOLD
    min_duration: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"event threshold must be between 0 and 1, got {self.threshold}")
        if not self.min_duration >= 0.0:
            raise ValueError(f"min_duration must be at least 0, got {self.min_duration}")


@dataclass(frozen=True)
class SoundEvent:
    """One label active from `start` to `end` (seconds)."""

    label: str
    mid: str
    index: int
    start: float
    end: float
    peak: float
    mean: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def as_dict(self, *, decimals: int = 8) -> dict[str, Any]:
        return {
            "label": self.label,
            "mid": self.mid,
            "index": self.index,
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "peak": round(self.peak, decimals),
            "mean": round(self.mean, decimals),
        }


@dataclass(frozen=True)
class SlotScores:
    """The time axis cut at every window edge: slot `i` runs from `edges[i]` to `edges[i + 1]`."""

    edges: np.ndarray  # [n_slots + 1] seconds, from 0 to the duration
    scores: np.ndarray  # [n_slots, n_classes] lowest score of the windows covering the slot; NaN where none does
    classes: np.ndarray  # [n_classes] the class index of each column

    @property
    def starts(self) -> np.ndarray:
        return self.edges[:-1]

    @property
    def ends(self) -> np.ndarray:
        return self.edges[1:]


def slot_scores(
    starts: np.ndarray,
    ends: np.ndarray,
    window_scores: np.ndarray,
    duration: float,
    *,
    classes: Sequence[int] | None = None,
) -> SlotScores:
    """Per-slot scores (see the module docstring) for windows sorted by start, all of one length."""
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    columns = np.arange(window_scores.shape[1]) if classes is None else np.asarray(classes, dtype=np.int64)
    scores = np.asarray(window_scores)[:, columns].astype(np.float64)
    if len(starts) != len(ends) or len(starts) != len(scores):
        raise ValueError("starts, ends and window_scores must have one entry per window")
    if np.any(np.diff(starts) < 0) or np.any(np.diff(ends) < 0) or np.any(ends <= starts):
        raise ValueError("windows must be sorted by start and by end, each ending after it starts")
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    cuts = np.concatenate([[0.0, duration], starts, ends])
    cuts = np.unique(np.round(np.clip(cuts, 0.0, duration), 9))
    left, right = cuts[:-1], cuts[1:]
    # Windows covering [u, v] fully are those with start <= u and end >= v: a contiguous run of indices.
    last = np.searchsorted(starts, left + _EPS, side="right") - 1
    first = np.searchsorted(ends, right - _EPS, side="left")
    out = np.full((len(left), len(columns)), np.nan)
    covered = first <= last
    if covered.any():
        span = int((last - first)[covered].max()) + 1
        rows = np.flatnonzero(covered)
        best = np.full((len(rows), len(columns)), np.inf)
        for offset in range(span):
            k = first[rows] + offset
            valid = k <= last[rows]
            best[valid] = np.minimum(best[valid], scores[k[valid]])
        out[rows] = best
    return SlotScores(edges=cuts, scores=out, classes=columns)


def events_from_scores(
    grid: SlotScores,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_duration: float = 0.0,
    class_table: Sequence[LabelClass] | None = None,
) -> list[SoundEvent]:
    """Merge each column's runs of slots scoring at least `threshold` into events, sorted by start."""
    table = Vocabulary.audioset() if class_table is None else class_table
    widths = np.diff(grid.edges)
    events: list[SoundEvent] = []
    with np.errstate(invalid="ignore"):
        active = grid.scores >= threshold  # NaN (no window) is never active
    for column, index in enumerate(grid.classes):
        on = active[:, column]
        if not on.any():
            continue
        change = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
        for begin, stop in zip(np.flatnonzero(change == 1), np.flatnonzero(change == -1)):
            start, end = float(grid.edges[begin]), float(grid.edges[stop])
            if end - start < min_duration - _EPS:
                continue
            values = grid.scores[begin:stop, column]
            cls = table[int(index)]
            events.append(SoundEvent(
                label=cls.name, mid=cls.mid, index=int(index), start=start, end=end,
                peak=float(values.max()), mean=float(np.average(values, weights=widths[begin:stop])),
            ))
    events.sort(key=lambda e: (e.start, -e.peak, e.index))
    return events


def detect_events(
    result: Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_duration: float = 0.0,
    classes: Sequence[int] | None = None,
) -> list[SoundEvent]:
    """Sound events of a `TagResult` (among `classes` if given), sorted by start time.

    >>> events = detect_events(tagger.tag("walk.wav", window=2.0, hop=0.5), threshold=0.4)  # doctest: +SKIP
    """
    EventSettings(threshold, min_duration)  # validates
    grid = slot_scores(result.starts, result.ends, result.window_scores, result.duration, classes=classes)
    return events_from_scores(grid, threshold=threshold, min_duration=min_duration, class_table=result.classes)
