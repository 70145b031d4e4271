"""What a run says about each input: `TagResult` (clip and window scores, embeddings) or `TagFailure`.

Free of torch: writers, exports and the run itself handle results without importing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dymn_cli.audio.windows import WindowGrid
from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.inference.pipeline import WindowOutputs

if TYPE_CHECKING:
    from dymn_cli.models.head import ClassifierHead

AGGREGATES = ("mean", "max")


@dataclass
class TagResult:
    """Scores of one input: per clip and per window, with the windows' embeddings."""

    source: str
    duration: float  # seconds of audio
    scores: np.ndarray  # [K] clip scores, aggregated over windows
    starts: np.ndarray  # [n_windows] seconds
    ends: np.ndarray  # [n_windows] seconds (the last window may reach past the end: it is zero-padded)
    window_scores: np.ndarray  # [n_windows, K] probabilities (AudioSet: sigmoids; a head's: its activation)
    embeddings: np.ndarray  # [n_windows, C]
    classes: Vocabulary = field(default_factory=Vocabulary.audioset, repr=False)  # names the K columns
    warnings: list[str] = field(default_factory=list)  # parts of a damaged input that could not be decoded

    def window_times(self) -> tuple[np.ndarray, np.ndarray]:
        """`(starts, ends)` of the windows as every output writes them (timelines, CSV rows, the
        embeddings archive), so that they join on (path, start, end): seconds to the microsecond,
        each `end` clipped to the end of the file (the last window's padding is not audio)."""
        starts = np.array([round(float(s), 6) for s in self.starts], dtype=np.float64)
        ends = np.array([round(min(float(e), self.duration), 6) for e in self.ends], dtype=np.float64)
        return starts, ends

    @property
    def embedding(self) -> np.ndarray:
        """Clip embedding: the mean of the windows' embeddings."""
        return self.embeddings.mean(axis=0)

    def top(self, k: int | None = 10, *, threshold: float | np.ndarray | None = None) -> list[tuple[str, float]]:
        """`[(label, score), ...]`, best first."""
        return [(self.classes[i].name, float(self.scores[i])) for i in self.top_indices(k, threshold=threshold)]

    def top_indices(self, k: int | None = 10, *, threshold: float | np.ndarray | None = None) -> list[int]:
        """Class indices, best first (ties by index), at most `k`, each scoring at least `threshold`
        (one score, or each class's own)."""
        return rank_classes(self.scores, top=k, threshold=threshold)


def rank_classes(
    scores: np.ndarray, *, top: int | None, threshold: float | np.ndarray | None = None, classes: Sequence[int] | None = None
) -> list[int]:
    """Indices of the best classes of `scores` (among `classes` if given), best first, ties by index.

    `threshold` is one score for every class, or each class's own (`[K]`, e.g. `ClassThresholds.levels`)."""
    candidates = np.arange(len(scores)) if classes is None else np.asarray(classes, dtype=np.int64)
    order = candidates[np.lexsort((candidates, -scores[candidates]))] if len(candidates) else candidates
    if threshold is not None:
        order = order[scores[order] >= (threshold if np.isscalar(threshold) else np.asarray(threshold)[order])]
    return [int(i) for i in (order if top is None else order[:top])]


@dataclass
class TagFailure:
    """An input that could not be tagged, and why (one line)."""

    source: str
    reason: str


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Scores from logits, as float32; written so that large logits of either sign never overflow."""
    return np.exp(-np.logaddexp(0.0, -logits.astype(np.float64))).astype(np.float32)


def score_windows(
    logits: np.ndarray, embeddings: np.ndarray, *, classes: Vocabulary, head: ClassifierHead | None = None
) -> np.ndarray:
    """`[n, len(classes)]` window scores: the AudioSet scores when `classes` has them, then the `head`'s
    scores of the windows' embeddings."""
    columns = []
    if classes.has_audioset:
        columns.append(sigmoid(logits))
    if head is not None:
        columns.append(head.probabilities(embeddings))
    scores = np.concatenate(columns, axis=1) if len(columns) > 1 else columns[0]
    if scores.shape[1] != len(classes):
        raise ValueError(f"{scores.shape[1]} scores per window for a vocabulary of {len(classes)} classes")
    return scores


def build_result(
    name: str,
    outputs: WindowOutputs,
    *,
    grid: WindowGrid,
    aggregate: str,
    sample_rate: int,
    classes: Vocabulary,
    head: ClassifierHead | None = None,
    window_scores: np.ndarray | None = None,
) -> TagResult:
    """The `TagResult` of one input from its windows' network outputs (also used by the Ray runner);
    `window_scores`, where the tagger scores the logits its own way, else `score_windows`'."""
    if window_scores is None:
        window_scores = score_windows(outputs.logits, outputs.embeddings, classes=classes, head=head)
    starts = grid.starts(outputs.n_samples) / sample_rate
    scores = window_scores.mean(axis=0) if aggregate == "mean" else window_scores.max(axis=0)
    return TagResult(
        source=name,
        duration=outputs.n_samples / sample_rate,
        scores=scores,
        starts=starts,
        ends=starts + grid.window / sample_rate,
        window_scores=window_scores,
        embeddings=outputs.embeddings,
        classes=classes,
        warnings=list(outputs.warnings),
    )
