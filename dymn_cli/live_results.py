"""What `Tagger.stream` yields as a live stream goes by: window scores, sound events, gaps, the end of a source.

Times: `start`/`end` are seconds of stream time (the audio's own clock, continuous across gaps);
`time` is the wall clock (timezone-aware `datetime`) when that point of the stream arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.events import SoundEvent
from dymn_cli.results import rank_classes

__all__ = ["LiveEvent", "LiveRecord", "LiveWindow", "StreamEnd", "StreamGap", "wall_time"]


def wall_time(seconds_since_epoch: float) -> datetime:
    """A `time.time()` value as a local, timezone-aware datetime."""
    return datetime.fromtimestamp(seconds_since_epoch).astimezone()


@dataclass(frozen=True)
class LiveWindow:
    """One window of a live source, scored as soon as its last sample arrived."""

    source: str
    index: int  # window number in this source's stream
    start: float  # stream seconds
    end: float  # stream seconds (the last window of an ended stream may reach past its end: zero-padded)
    time: datetime  # when the window's first sample arrived
    scores: np.ndarray  # [K] probabilities of the tagger's classes
    embedding: np.ndarray  # [C]
    latency: float  # seconds from the arrival of the window's last sample to its scores
    classes: Vocabulary = field(default_factory=Vocabulary.audioset, repr=False)

    def top(self, k: int | None = 10, *, threshold: float | np.ndarray | None = None) -> list[tuple[str, float]]:
        """`[(label, score), ...]`, best first."""
        return [(self.classes[i].name, float(self.scores[i])) for i in rank_classes(self.scores, top=k, threshold=threshold)]


@dataclass(frozen=True)
class LiveEvent:
    """A sound event of a live source, reported once, when it ended."""

    source: str
    event: SoundEvent
    time: datetime  # when the event's first sample arrived


@dataclass(frozen=True)
class StreamGap:
    """A network source dropped at stream time `position`, or a block of NaN or infinite samples was left out
    there; audio came again after `seconds` (`reason` says which)."""

    source: str
    position: float
    lost: datetime
    resumed: datetime
    reason: str

    @property
    def seconds(self) -> float:
        return (self.resumed - self.lost).total_seconds()


@dataclass(frozen=True)
class StreamEnd:
    """A source ended after `duration` seconds of stream time; `error` says why, if it failed."""

    source: str
    duration: float
    error: str | None = None


LiveRecord = LiveWindow | LiveEvent | StreamGap | StreamEnd
