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

One algorithm for files and streams
-----------------------------------
`EventDetector` takes windows in stream order and reports each event once, when it ends: after window
`i` arrives, every slot before its start is final (later windows start later and cover none of them).
`detect_events` feeds it a whole file's windows at once, a live stream feeds it window by window; slot
scores and each event's running sums are computed slot by slot in the same order either way, so the
event lists are equal to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dymn_cli.audioset.thresholds import ClassThresholds
from dymn_cli.audioset.vocabulary import LabelClass, Vocabulary

__all__ = [
    "DEFAULT_THRESHOLD",
    "EventDetector",
    "EventSettings",
    "SlotScores",
    "SoundEvent",
    "detect_events",
    "events_from_scores",
    "slot_scores",
    "strongest_labels",
]

DEFAULT_THRESHOLD = 0.5
_EPS = 1e-9  # seconds: window edges computed from sample counts agree to far better than this


@dataclass(frozen=True)
class EventSettings:
    """How events are cut: the score a slot needs, and the shortest event kept (seconds)."""

    threshold: float = DEFAULT_THRESHOLD
    min_duration: float = 0.0
    per_class: ClassThresholds | None = None
    """Classes with thresholds of their own (`--thresholds`); the others use `threshold`."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"event threshold must be between 0 and 1, got {self.threshold}")
        if not self.min_duration >= 0.0:
            raise ValueError(f"min_duration must be at least 0, got {self.min_duration}")

    def levels(self, n_classes: int) -> float | np.ndarray:
        """The score each of `n_classes` classes needs: `threshold`, or `[n_classes]` with `per_class`."""
        return self.threshold if self.per_class is None else self.per_class.levels(n_classes, default=self.threshold)


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
    origin: float = 0.0,
) -> SlotScores:
    """Per-slot scores (see the module docstring) for windows sorted by start, all of one length: the
    slots from `origin` (0, or an edge where an earlier call stopped) to `duration`."""
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    columns = np.arange(window_scores.shape[1]) if classes is None else np.asarray(classes, dtype=np.int64)
    scores = np.asarray(window_scores)[:, columns].astype(np.float64)
    if len(starts) != len(ends) or len(starts) != len(scores):
        raise ValueError("starts, ends and window_scores must have one entry per window")
    if np.any(np.diff(starts) < 0) or np.any(np.diff(ends) < 0) or np.any(ends <= starts):
        raise ValueError("windows must be sorted by start and by end, each ending after it starts")
    if not duration > origin:
        raise ValueError(f"duration must be positive (after {origin}), got {duration}")
    cuts = np.concatenate([[origin, duration], starts, ends])
    cuts = np.unique(np.round(np.clip(cuts, origin, duration), 9))
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
    threshold: float | np.ndarray = DEFAULT_THRESHOLD,
    min_duration: float = 0.0,
    class_table: Sequence[LabelClass] | None = None,
) -> list[SoundEvent]:
    """Merge each column's runs of slots scoring at least `threshold` into events, sorted by start."""
    runs = _Runs(grid.classes, threshold=threshold, min_duration=min_duration, class_table=class_table)
    events = runs.add(grid) + runs.close_all(float(grid.edges[-1]))
    return sorted(events, key=_event_order)


class EventDetector:
    """Sound events from windows fed in stream order, each reported once, when it ends.

    >>> detector = EventDetector(threshold=0.5)
    >>> for start, end, scores in windows:       # doctest: +SKIP
    ...     for event in detector.feed([start], [end], scores[None]): ...
    >>> last = detector.finish(duration)       # doctest: +SKIP

    Windows are all of one length and come sorted by start; `scores` are `[n, 527]` (all classes,
    `classes` picks the columns watched).
    """

    def __init__(
        self,
        *,
        threshold: float | np.ndarray = DEFAULT_THRESHOLD,
        min_duration: float = 0.0,
        classes: Sequence[int] | None = None,
        class_table: Sequence[LabelClass] | None = None,
    ) -> None:
        if np.isscalar(threshold):
            EventSettings(float(threshold), min_duration)  # validates
        else:
            EventSettings(min_duration=min_duration)
            if not bool(np.all((np.asarray(threshold) >= 0.0) & (np.asarray(threshold) <= 1.0))):
                raise ValueError("event thresholds must be between 0 and 1")
        self._classes = None if classes is None else np.asarray(classes, dtype=np.int64)
        self._table = class_table
        self._threshold, self._min_duration = threshold, min_duration
        self._runs: _Runs | None = None
        self._starts: list[float] = []
        self._ends: list[float] = []
        self._scores: list[np.ndarray] = []  # the windows that may still cover a slot after `_done`
        self._done = 0.0  # slots before this edge are final

    def feed(
        self, starts: Sequence[float] | np.ndarray, ends: Sequence[float] | np.ndarray, scores: np.ndarray
    ) -> list[SoundEvent]:
        """Add windows; return the events that ended before the last one's start."""
        scores = np.asarray(scores)
        if self._runs is None:
            columns = np.arange(scores.shape[1]) if self._classes is None else self._classes
            self._runs = _Runs(columns, threshold=self._threshold, min_duration=self._min_duration, class_table=self._table)
        if not len(starts):
            return []
        self._starts.extend(float(s) for s in starts)
        self._ends.extend(float(e) for e in ends)
        self._scores.extend(np.asarray(scores)[:, self._runs.columns].astype(np.float64))
        return self._finalize(self._starts[-1])

    def finish(self, duration: float) -> list[SoundEvent]:
        """The stream ended after `duration` seconds: the remaining slots, and every event still open."""
        if self._runs is None:
            return []
        events = self._finalize(duration) if duration > self._done else []
        return events + self._runs.close_all(duration)

    def _finalize(self, edge: float) -> list[SoundEvent]:
        assert self._runs is not None
        if not edge > self._done + _EPS:
            return []
        grid = slot_scores(np.array(self._starts), np.array(self._ends), np.array(self._scores), edge, origin=self._done)
        grid = SlotScores(edges=grid.edges, scores=grid.scores, classes=self._runs.columns)
        events = self._runs.add(grid)
        self._done = float(grid.edges[-1])
        keep = next((k for k, end in enumerate(self._ends) if end > self._done + _EPS), len(self._ends))
        del self._starts[:keep], self._ends[:keep], self._scores[:keep]
        return events


class _Runs:
    """Each watched column's open run of active slots, carried from one stretch of slots to the next."""

    def __init__(
        self, columns: np.ndarray, *, threshold: float | np.ndarray, min_duration: float, class_table: Sequence[LabelClass] | None
    ) -> None:
        self.columns = np.asarray(columns, dtype=np.int64)
        # (each class's own threshold: a vector over the class table, taken at the watched columns)
        self.threshold = threshold if np.isscalar(threshold) else np.asarray(threshold, dtype=np.float64)[self.columns]
        self.min_duration = min_duration
        self.table = Vocabulary.audioset() if class_table is None else class_table
        self.open: dict[int, list[float]] = {}  # column -> [start, peak, sum of score x width, width]

    def add(self, grid: SlotScores) -> list[SoundEvent]:
        """Slots that follow the previous ones; returns the runs that ended among them."""
        widths = np.diff(grid.edges)
        with np.errstate(invalid="ignore"):
            active = grid.scores >= self.threshold  # NaN (no window) is never active
        events: list[SoundEvent] = []
        for column in sorted(set(np.flatnonzero(active.any(axis=0)).tolist()) | set(self.open)):
            on = active[:, column]
            run = self.open.pop(column, None)
            if run is not None and not on[0]:
                events.extend(self._event(column, run, float(grid.edges[0])))
                run = None
            change = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
            for begin, stop in zip(np.flatnonzero(change == 1), np.flatnonzero(change == -1)):
                if run is None:
                    run = [float(grid.edges[begin]), -np.inf, 0.0, 0.0]
                for slot in range(begin, stop):  # (one slot at a time: the same sums however the slots were split)
                    value, width = float(grid.scores[slot, column]), float(widths[slot])
                    run[1] = max(run[1], value)
                    run[2] += value * width
                    run[3] += width
                if stop < len(on):
                    events.extend(self._event(column, run, float(grid.edges[stop])))
                    run = None
            if run is not None:
                self.open[column] = run
        return events

    def close_all(self, end: float) -> list[SoundEvent]:
        events = [e for column, run in sorted(self.open.items()) for e in self._event(column, run, end)]
        self.open = {}
        return events

    def _event(self, column: int, run: list[float], end: float) -> list[SoundEvent]:
        start, peak, total, width = run
        if end - start < self.min_duration - _EPS:
            return []
        index = int(self.columns[column])
        cls = self.table[index]
        return [SoundEvent(label=cls.name, mid=cls.mid, index=index, start=start, end=end, peak=peak, mean=total / width)]


def _event_order(event: SoundEvent) -> tuple[float, float, int]:
    return (event.start, -event.peak, event.index)


def detect_events(
    result: Any,
    *,
    threshold: float | np.ndarray = DEFAULT_THRESHOLD,
    min_duration: float = 0.0,
    classes: Sequence[int] | None = None,
) -> list[SoundEvent]:
    """Sound events of a `TagResult` (among `classes` if given), sorted by start time.

    >>> events = detect_events(tagger.tag("walk.wav", window=2.0, hop=0.5), threshold=0.4)  # doctest: +SKIP
    """
    detector = EventDetector(threshold=threshold, min_duration=min_duration, classes=classes, class_table=result.classes)
    events = detector.feed(result.starts, result.ends, result.window_scores) + detector.finish(result.duration)
    return sorted(events, key=_event_order)


def strongest_labels(events: Sequence[SoundEvent], top: int | None) -> list[SoundEvent]:
    """The events of the `top` labels with the highest peak (ties: the lower class index), in their
    order; all of them when `top` is None."""
    if top is None:
        return list(events)
    peaks: dict[int, float] = {}
    for event in events:
        peaks[event.index] = max(peaks.get(event.index, float("-inf")), event.peak)
    kept = set(sorted(peaks, key=lambda index: (-peaks[index], index))[:top])
    return [event for event in events if event.index in kept]
