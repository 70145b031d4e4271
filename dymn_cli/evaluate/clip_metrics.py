"""Clip-level figures over arrays: `truth [n, classes]` (bool) against `scores [n, classes]` (float).

Each figure is computed the way its field's reference computes it, and the tests check each against an
independent implementation:

- **AP** per class as scikit-learn's `average_precision_score` (step-wise area under the
  precision-recall curve, tied scores one step), **mAP** the mean over the classes with positives, as
  EfficientAT's AudioSet evaluation takes it;
- **ROC AUC** as scikit-learn's `roc_auc_score` (ties count one half), for classes with positives and
  negatives, and **d'** = sqrt(2) * Phi^-1(AUC), computed from the mean AUC as the AudioSet papers do;
- **lwlrap** as the DCASE 2019 task 2 reference computes it (label-weighted label-ranking average
  precision; tied scores ranked together, as the reference's scikit-learn form does);
- **precision, recall, F1** at one threshold (`score >= threshold` is a positive), micro-averaged over
  the classes, and at each class's own best-F1 threshold (the score at which its F1 peaks).

Scores that are not finite numbers are refused (`ValueError`): a NaN would silently reorder a ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

__all__ = [
    "ClipMetrics",
    "ThresholdFigures",
    "average_precision",
    "best_f1_threshold",
    "check_arrays",
    "d_prime",
    "lwlrap",
    "metrics",
    "roc_auc",
    "threshold_figures",
]


def _array(value: object, what: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError:  # (nested lists of unequal lengths)
        raise ValueError(f"{what} must be a [n, classes] array; got nested sequences of unequal lengths") from None
    if array.ndim != 2:
        hint = " (for one class, pass a column: reshape(-1, 1))" if array.ndim == 1 else ""
        raise ValueError(f"{what} must be a 2-D [n, classes] array, got shape {array.shape}{hint}")
    return array


def check_arrays(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`truth` as bool and `scores` as float64, both `[n, classes]` of one shape, at least one of each;
    `ValueError` otherwise, and for any score that is not a finite real number."""
    truth, scores = _array(truth, "truth"), _array(scores, "scores")
    if truth.shape != scores.shape:
        raise ValueError(f"truth and scores must have one shape [n, classes], got {truth.shape} and {scores.shape}")
    if truth.size == 0:
        raise ValueError(f"truth and scores are empty (shape {truth.shape}): no figures without clips and classes")
    # Boolean scores are refused rather than ranked: they are decisions (or truth passed as scores), and
    # every ranked figure of them would be that of one cut, which no one means to report.
    if scores.dtype == bool:
        raise ValueError(
            "scores are booleans, decisions rather than scores: pass the scores (probabilities or logits), "
            "as metrics(truth, scores)"
        )
    if scores.dtype.kind not in "iuf":
        raise ValueError(f"scores must be real numbers (a float or integer array), got dtype {scores.dtype}")
    scores = scores.astype(np.float64)
    if truth.dtype != bool:
        other = ~np.isin(truth, (0, 1))
        if other.any():
            raise ValueError(f"truth must hold only 0/1 or False/True, got {truth[other].flat[0]} among them")
        truth = truth.astype(bool)
    bad = ~np.isfinite(scores)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(
            f"scores that are not finite numbers: {int(bad.sum())} (e.g. row {row}, class {column}: {scores[row, column]})"
        )
    return truth, scores


def _ranked(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one class, by falling score: the cumulative true and false positives at the last item of each
    group of tied scores, and those scores (each group is one threshold, `score >= threshold`)."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    ranked_scores, ranked_truth = scores[order], truth[order]
    group_ends = np.r_[np.flatnonzero(np.diff(ranked_scores)), ranked_scores.size - 1]
    true_positives = np.cumsum(ranked_truth)[group_ends]
    false_positives = group_ends + 1 - true_positives
    return true_positives, false_positives, ranked_scores[group_ends]


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """AP of one class (1-D arrays) as `sklearn.metrics.average_precision_score`; NaN without positives."""
    truth, scores = np.asarray(truth, dtype=bool), np.asarray(scores, dtype=np.float64)
    positives = int(truth.sum())
    if positives == 0:
        return math.nan
    true_positives, false_positives, _ = _ranked(truth, scores)
    precision = true_positives / (true_positives + false_positives)
    recall_steps = np.diff(np.r_[0, true_positives]) / positives
    return float(np.sum(recall_steps * precision))


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of one class as `sklearn.metrics.roc_auc_score` (the Mann-Whitney statistic, ties one
    half); NaN unless the class has both positives and negatives."""
    truth, scores = np.asarray(truth, dtype=bool), np.asarray(scores, dtype=np.float64)
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def d_prime(auc: float) -> float:
    """d' = sqrt(2) * Phi^-1(AUC): the separation of two unit normals that gives this AUC."""
    return float(math.sqrt(2.0) * ndtri(auc)) if not math.isnan(auc) else math.nan


def lwlrap(truth: np.ndarray, scores: np.ndarray) -> float:
    """Label-weighted label-ranking average precision, as the DCASE 2019 task 2 reference computes it:
    for each (clip, positive class), the share of true classes among the classes scored at or above it
    in that clip; averaged over all (clip, positive class) pairs, so each class weighs as its positives.

    Tied scores count as ranked together (the reference's scikit-learn form,
    `label_ranking_average_precision_score` weighted by each clip's positives). The reference's numpy
    form breaks ties by column order, which here depends on the truth file's layout: the two agree
    whenever a clip's scores are distinct."""
    truth, scores = check_arrays(truth, scores)
    n_labels = int(truth.sum())
    if n_labels == 0:
        return math.nan
    total = 0.0
    for clip in np.flatnonzero(truth.any(axis=1)):
        positive_scores = scores[clip][truth[clip]]
        at_or_above = scores.shape[1] - np.searchsorted(np.sort(scores[clip]), positive_scores, side="left")
        true_at_or_above = positive_scores.size - np.searchsorted(np.sort(positive_scores), positive_scores, side="left")
        total += float(np.sum(true_at_or_above / at_or_above))
    return total / n_labels


@dataclass(frozen=True)
class ThresholdFigures:
    """Precision, recall and F1 summed over classes (micro), and F1 averaged over the classes with
    positives (macro), with the counts they come from."""

    precision: float
    recall: float
    f1: float
    macro_f1: float
    true_positives: int
    false_positives: int
    false_negatives: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "macro_f1": self.macro_f1,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
        }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def threshold_figures(truth: np.ndarray, scores: np.ndarray, thresholds: float | np.ndarray) -> ThresholdFigures:
    """The figures when `score >= threshold` is a positive: one threshold, or one per class (`[classes]`)."""
    truth, scores = check_arrays(truth, scores)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if not np.isfinite(thresholds).all():
        raise ValueError(f"a threshold must be a finite number, got {thresholds}")
    predicted = scores >= np.broadcast_to(thresholds, scores.shape[1:])
    true_positives = (predicted & truth).sum(axis=0)
    false_positives = (predicted & ~truth).sum(axis=0)
    false_negatives = (~predicted & truth).sum(axis=0)
    tp, fp, fn = int(true_positives.sum()), int(false_positives.sum()), int(false_negatives.sum())
    with_positives = truth.any(axis=0)
    class_f1 = 2 * true_positives / np.maximum(1, 2 * true_positives + false_positives + false_negatives)
    return ThresholdFigures(
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        macro_f1=float(class_f1[with_positives].mean()) if with_positives.any() else math.nan,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
    )


def best_f1_threshold(truth: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """`(threshold, F1)` for one class: the score at which `score >= threshold` gives the highest F1 (the
    highest such score when several tie); `(NaN, NaN)` without positives."""
    truth, scores = np.asarray(truth, dtype=bool), np.asarray(scores, dtype=np.float64)
    positives = int(truth.sum())
    if positives == 0:
        return math.nan, math.nan
    true_positives, false_positives, thresholds = _ranked(truth, scores)
    f1 = 2 * true_positives / (true_positives + false_positives + positives)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


@dataclass(frozen=True)
class ClipMetrics:
    """Every clip-level figure, and per class: positives, AP, AUC, best-F1 threshold and its F1 (NaN
    where a class has no positives, or for AUC no negatives)."""

    mAP: float  # noqa: N815 - the field's own name
    auc: float
    d_prime: float
    lwlrap: float
    threshold: float
    at_threshold: ThresholdFigures
    at_best_thresholds: ThresholdFigures
    positives: np.ndarray
    ap: np.ndarray
    class_auc: np.ndarray
    best_thresholds: np.ndarray
    best_f1: np.ndarray

    @property
    def n_classes_with_positives(self) -> int:
        return int(np.count_nonzero(self.positives))


def _nan_mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def metrics(truth: np.ndarray, scores: np.ndarray, *, threshold: float = 0.5) -> ClipMetrics:
    """All clip-level figures of `scores` against `truth` (see the module docstring): `truth` [clips, classes]
    of 0/1 or bool, `scores` [clips, classes] of finite real numbers (float or integer; not bool), arrays or
    nested lists; `threshold` for the thresholded figures. Anything else is a `ValueError` that says what."""
    truth, scores = check_arrays(truth, scores)
    n_classes = scores.shape[1]
    ap = np.array([average_precision(truth[:, k], scores[:, k]) for k in range(n_classes)])
    auc = np.array([roc_auc(truth[:, k], scores[:, k]) for k in range(n_classes)])
    best = np.array([best_f1_threshold(truth[:, k], scores[:, k]) for k in range(n_classes)]).reshape(n_classes, 2)
    mean_auc = _nan_mean(auc)
    # A class without positives has no best threshold: it keeps the common one.
    per_class = np.where(np.isnan(best[:, 0]), threshold, best[:, 0])
    return ClipMetrics(
        mAP=_nan_mean(ap),
        auc=mean_auc,
        d_prime=d_prime(mean_auc),
        lwlrap=lwlrap(truth, scores),
        threshold=threshold,
        at_threshold=threshold_figures(truth, scores, threshold),
        at_best_thresholds=threshold_figures(truth, scores, per_class),
        positives=truth.sum(axis=0),
        ap=ap,
        class_auc=auc,
        best_thresholds=best[:, 0],
        best_f1=best[:, 1],
    )
