"""`evaluate(results, truth)`: the library function behind `dymn-tag evaluate`.

It reads the RESULTS and the TRUTH, pairs their inputs (`matching`), turns the truth's labels into
classes, builds `truth [n, classes]` and `scores [n, classes]` over the classes the truth names (the
classes it does not name are not annotated, so neither right nor wrong), and computes the clip figures;
with times on both sides, the event figures too.

A class missing from an input's results (a `--top K` list, or `--threshold`) counts as the lowest
score, 0; the figures are then a lower bound, and `warnings` says so (tag with `--top all`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dymn_cli.audioset.thresholds import load_thresholds
from dymn_cli.audioset.vocabulary import LabelClass, Vocabulary
from dymn_cli.errors import UsageError
from dymn_cli.evaluate.clip_metrics import ClipMetrics, ThresholdFigures, metrics, threshold_figures
from dymn_cli.evaluate.event_metrics import Event, EventFigures, SegmentFigures, event_metrics, segment_metrics
from dymn_cli.evaluate.matching import Matching, known_classes, match_inputs, no_match_error, printable_list, resolve_labels
from dymn_cli.evaluate.results import InputResult, ResultSet, as_paths, read_results
from dymn_cli.evaluate.truth import PATH, Truth, read_truth
from dymn_cli.wording import counted

__all__ = ["Evaluation", "evaluate"]

MISSING_SCORE = 0.0

PathsLike = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass
class Evaluation:
    """The figures, the classes they are over (`ids`, `names`), the arrays they come from, and what
    the user should know (`warnings`, one line each)."""

    clip: ClipMetrics
    ids: list[str]
    names: list[str]
    truth: np.ndarray
    scores: np.ndarray
    inputs: list[str]
    segments: SegmentFigures | None = None
    events: EventFigures | None = None
    warnings: list[str] = field(default_factory=list)
    missing_scores: int = 0
    truth_only: list[str] = field(default_factory=list)
    results_only: list[str] = field(default_factory=list)
    at_thresholds: ThresholdFigures | None = None
    """The figures at the per-class thresholds of `thresholds_file` (classes it does not list: `threshold`)."""
    thresholds_file: str | None = None
    unseparated: list[str] = field(default_factory=list)
    """The classes (ids) whose best F1 comes only from calling every input positive."""


def evaluate(
    results: PathsLike,
    truth: PathsLike,
    *,
    threshold: float = 0.5,
    thresholds: str | os.PathLike[str] | None = None,
    collar: float = 0.2,
    resolution: float = 1.0,
) -> Evaluation:
    """Score RESULTS (files or folders of `dymn-tag` outputs; one path or a list) against TRUTH (see
    `dymn_cli.evaluate.truth`). `thresholds`, a `label,mid,threshold` CSV (what `--save-thresholds`
    writes), adds the figures at those per-class thresholds, as `dymn-tag --thresholds` would cut."""
    results, truth = as_paths(results, "results"), as_paths(truth, "truth")
    found = read_results(results)
    labelled = read_truth(truth)
    truth_name = ", ".join(str(p) for p in truth)
    base = truth[0].parent if len(truth) == 1 and truth[0].is_file() and labelled.kind == PATH else None
    classes = resolve_labels(labelled.labels(), found, truth_name=truth_name)
    matching = match_inputs(labelled, found, base=base)
    if not matching.pairs:
        raise no_match_error(truth_name, labelled, found, matching)
    ids = list(dict.fromkeys(classes.values()))
    rows = [found.inputs[path] for _, path in matching.pairs]
    truth_array, scores = _arrays(ids, labelled, matching, rows, classes)
    missing = int(np.isnan(scores).sum())
    if missing == scores.size:
        raise UsageError(
            f"{', '.join(map(str, results))}: none of the truth's classes has a score in the results (a --top, "
            "--threshold or --thresholds cut when tagged, or events only): nothing to rank; tag with --top all"
        )
    scores[np.isnan(scores)] = MISSING_SCORE
    known = known_classes(found)
    evaluation = Evaluation(
        clip=metrics(truth_array, scores, threshold=threshold),
        ids=ids,
        names=[known.get(mid, mid) for mid in ids],
        truth=truth_array,
        scores=scores,
        inputs=[path for _, path in matching.pairs],
        missing_scores=missing,
        truth_only=matching.truth_only,
        results_only=matching.results_only,
    )
    evaluation.warnings = _warnings(found, matching, missing, scores.size, truth_name)
    evaluation.unseparated = _unseparated(evaluation)
    if thresholds is not None:
        _score_thresholds(evaluation, thresholds, known, default=threshold)
    if labelled.timed:
        _event_figures(evaluation, labelled, matching, rows, classes, threshold=threshold, collar=collar, resolution=resolution)
    return evaluation


def _arrays(
    ids: list[str], labelled: Truth, matching: Matching, rows: list[InputResult], classes: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """`truth [inputs, classes]` and `scores [inputs, classes]` of the matched inputs, NaN where a
    result holds no score for a class."""
    column = {mid: k for k, mid in enumerate(ids)}
    truth = np.zeros((len(rows), len(ids)), dtype=bool)
    for row, (key, _) in enumerate(matching.pairs):
        for span in labelled.files[key]:
            truth[row, column[classes[span.label]]] = True
    scores = np.full((len(rows), len(ids)), np.nan)
    for row, result in enumerate(rows):
        wanted = [(column[mid], value) for mid, value in result.scores.items() if mid in column]
        if wanted:
            columns, values = zip(*wanted)
            scores[row, list(columns)] = values
    return truth, scores


def _warnings(found: ResultSet, matching: Matching, missing: int, total: int, truth_name: str) -> list[str]:
    notes = []
    if matching.results_only:
        notes.append(
            f"no truth for {counted(len(matching.results_only), 'input')} of the results, left out: "
            f"{printable_list(matching.results_only)}"
        )
    if matching.truth_only:
        notes.append(
            f"no results for {counted(len(matching.truth_only), 'file')} of the truth, left out: {printable_list(matching.truth_only)}"
        )
    if matching.ambiguous:
        notes.append(
            f"{counted(len(matching.ambiguous), 'truth entry')} matching several results, or one another's, left out: "
            f"{printable_list(matching.ambiguous)}"
        )
    if found.failed:
        notes.append(f"{counted(len(found.failed), 'input')} failed when tagged (no scores): {printable_list(found.failed)}")
    if found.duplicates:
        notes.append(
            f"{counted(len(found.duplicates), 'input')} more than once in the results, the first kept: "
            f"{printable_list(found.duplicates)}"
        )
    if missing:
        notes.append(
            f"{missing} of {total} scores are not in the results (a --top, --threshold or --thresholds cut when tagged, "
            f"or results with events, whose peaks are the only scores): they count as the lowest score, {MISSING_SCORE:g}, "
            "so the figures are a lower bound; tag with --top all for exact figures"
        )
    return notes


def _unseparated(evaluation: Evaluation) -> list[str]:
    """The classes whose best F1 comes from calling every input positive: their best threshold is their
    lowest score, and as a `--thresholds` level it would tag every input with them. (A class that every
    input has is not one: with no negative, there is nothing for its scores to separate.)"""
    clip, n = evaluation.clip, len(evaluation.inputs)
    return [
        mid
        for k, mid in enumerate(evaluation.ids)
        if 0 < clip.positives[k] < n and clip.best_thresholds[k] <= evaluation.scores[:, k].min()
    ]


def _score_thresholds(evaluation: Evaluation, path: str | os.PathLike[str], known: dict[str, str], *, default: float) -> None:
    """The figures at a thresholds file's per-class thresholds. Its rows may name any class of the results
    (a file saved on other truth, or for tagging, lists classes this truth does not name: they are not
    scored); a class the results do not know is an error, as when tagging."""
    ids = evaluation.ids
    every = [*ids, *(mid for mid in known if mid not in set(ids))]  # (the truth's classes first: levels[:len(ids)])
    vocabulary = Vocabulary([LabelClass(k, mid, known.get(mid, mid)) for k, mid in enumerate(every)])
    loaded = load_thresholds(path, vocabulary)
    evaluation.at_thresholds = threshold_figures(evaluation.truth, evaluation.scores, loaded.levels(len(ids), default=default))
    evaluation.thresholds_file = str(path)
    if not any(index < len(ids) for index, _ in loaded.pairs):
        evaluation.warnings.append(
            f"{path} names none of the truth's classes: the figures at its thresholds are those at --threshold {default:g}"
        )


def _window_events(result: InputResult, threshold: float) -> list[tuple[str, float, float]]:
    """Events from a timeline: the union of the windows where a class scores at least `threshold`."""
    spans: dict[str, list[list[float]]] = {}
    for start, end, scores in sorted(result.windows or [], key=lambda w: w[0]):
        for mid, value in scores.items():
            if value >= threshold:
                runs = spans.setdefault(mid, [])
                if runs and start <= runs[-1][1]:
                    runs[-1][1] = max(runs[-1][1], end)
                else:
                    runs.append([start, end])
    return [(mid, start, end) for mid, runs in spans.items() for start, end in runs]


def _event_figures(
    evaluation: Evaluation,
    labelled: Truth,
    matching: Matching,
    rows: list[InputResult],
    classes: dict[str, str],
    *,
    threshold: float,
    collar: float,
    resolution: float,
) -> None:
    reference: list[Event] = []
    estimated: list[Event] = []
    files: list[str] = []
    untimed = 0
    for (key, path), result in zip(matching.pairs, rows):
        found = result.events if result.events is not None else (_window_events(result, threshold) if result.windows else None)
        if found is None:
            continue
        files.append(path)
        estimated += [Event(path, mid, start, end) for mid, start, end in found]
        for span in labelled.files[key]:
            end = span.end if span.end is not None else result.duration
            if end is None:
                untimed += 1
                continue
            reference.append(Event(path, classes[span.label], span.start or 0.0, max(end, span.start or 0.0)))
    if not files:
        evaluation.warnings.append(
            "the truth has times but the results have no events or timeline: no event figures (tag with --events or --timeline)"
        )
        return
    if untimed:
        evaluation.warnings.append(
            f"{counted(untimed, 'truth span')} without an end, in results without durations: left out of the event figures"
        )
    ids = evaluation.ids
    evaluation.segments = segment_metrics(reference, estimated, classes=ids, files=files, resolution=resolution)
    evaluation.events = event_metrics(reference, estimated, classes=ids, files=files, collar=collar)
