"""Training a classification head on the frozen network's window embeddings (`dymn-tag train`).

    data = read_training_data("sounds/")              # sounds/<class>/*.wav, or a CSV
    report = train_head(data, Tagger("dymn10_as"), TrainingSettings(window=2.0, hop=1.0))
    save_head(report.head, "sounds.safetensors")

The training audio goes through the tagger's usual batched pipeline (decode workers, batches, one
failure per bad file while the others go on). Each labelled window is one example. Features are
standardised with the training windows' mean and standard deviation (kept in the head). The head is
linear, or has one hidden ReLU layer (`hidden`), and is fitted by full-batch L-BFGS with L2 weight
decay: deterministic, and seconds on a CPU for thousands of windows. Classes are balanced: every
class weighs the same in the loss whatever its number of windows (multi-label: each class's positives
weigh as much as its negatives). Single-label data (every example one class) gets a softmax, multi-
label data a sigmoid per class.

Held-out figures come from k-fold cross-validation over files (all windows of a file fall in one fold,
so that no fold is judged on windows of files it was trained on; files are dealt to folds class by
class): per class precision, recall and average precision of the windows, and the accuracy (single
label: the best class is the right one) or the mean average precision (multi-label; a class counts as
predicted at probability 0.5).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dymn_cli.errors import UsageError
from dymn_cli.models.head import Backbone, ClassifierHead
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.transfer.dataset import TrainingData, window_labels

__all__ = ["MIN_FILES", "TrainingReport", "TrainingSettings", "average_precision", "fit_layers", "train_head"]

log = logging.getLogger("dymn_cli")

MIN_FILES = 5  # fewer files of a class than this: a warning (too few to learn from, or to judge)


@dataclass(frozen=True)
class TrainingSettings:
    window: float = 10.0
    hop: float = 10.0
    hidden: int | None = None  # units of one hidden layer; None: a linear head
    folds: int = 5  # cross-validation folds over files for the held-out figures (0 or 1: none)
    weight_decay: float = 1e-3  # L2 penalty on the weights (on standardised features)
    max_iterations: int = 100  # L-BFGS iterations (at most; it stops sooner once the loss settles)
    seed: int = 0
    workers: int | None = None  # decode processes (None: one a CPU but one, at most 8)

    def __post_init__(self) -> None:
        if self.hidden is not None and self.hidden < 1:
            raise UsageError(f"--hidden must be at least 1, got {self.hidden}")
        if self.folds < 0:
            raise UsageError(f"--folds must be at least 0, got {self.folds}")
        if not self.weight_decay >= 0:
            raise UsageError(f"the weight decay must be at least 0, got {self.weight_decay}")


@dataclass
class ClassFigures:
    name: str
    files: int
    windows: int
    precision: float
    recall: float
    average_precision: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "class": self.name,
            "files": self.files,
            "windows": self.windows,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "average_precision": round(self.average_precision, 4),
        }


@dataclass
class TrainingReport:
    """What `train_head` made and found."""

    head: ClassifierHead
    classes: list[ClassFigures]  # held-out figures per class (empty without cross-validation)
    summary: dict[str, float]  # {"accuracy": ...} or {"mAP": ...}, and "folds"
    failures: list[TagFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_files: int = 0
    n_windows: int = 0
    embedding_seconds: float = 0.0
    training_seconds: float = 0.0

    def figures(self) -> dict[str, Any]:
        return {"summary": self.summary, "classes": [c.as_dict() for c in self.classes]}


def train_head(
    data: TrainingData,
    tagger: Any,
    settings: TrainingSettings = TrainingSettings(),
    *,
    on_outcome: Callable[[TagResult | TagFailure], None] | None = None,
) -> TrainingReport:
    """Embed the training audio with `tagger` (a `Tagger`), fit a head on it and judge it held out."""
    started = time.monotonic()
    examples = _embed(data, tagger, settings, on_outcome)
    embedding_seconds = time.monotonic() - started
    warnings: list[str] = []  # (the data's own warnings are the caller's to show, before the embedding)
    kept = [k for k, name in enumerate(data.classes) if examples.labels[:, k].any()]
    for k, name in enumerate(data.classes):
        if k not in kept:
            warnings.append(f"class {name!r}: no window of its files could be used: left out")
    if len(kept) < 2:
        raise UsageError("fewer than two classes have usable examples: nothing to train")
    classes = [data.classes[k] for k in kept]
    labels = examples.labels[:, kept]
    used = labels.any(axis=1)  # windows without any label teach nothing
    features, labels, groups = examples.features[used], labels[used], examples.groups[used]
    single = bool(np.all(labels.sum(axis=1) == 1))
    files = {name: len(np.unique(groups[labels[:, k]])) for k, name in enumerate(classes)}
    for name, count in files.items():
        if count < MIN_FILES:
            warnings.append(
                f"class {name!r} has {count} file{'s' if count != 1 else ''}: too few to learn from "
                f"or to judge (at least {MIN_FILES} recommended)"
            )
    fitting = time.monotonic()
    figures: list[ClassFigures] = []
    summary: dict[str, float] = {}
    folds = min(settings.folds, len(np.unique(groups)))
    if folds >= 2:
        held_out = _cross_validate(features, labels, groups, single, settings, folds)
        figures, summary = _figures(classes, files, labels, held_out, single)
        summary["folds"] = folds
    mean, scale, layers = fit_layers(features, labels, single=single, settings=settings)
    head = ClassifierHead(
        classes=tuple(classes),
        backbone=tagger.backbone,
        mean=mean,
        scale=scale,
        layers=layers,
        activation="softmax" if single else "sigmoid",
        window=settings.window,
        hop=settings.hop,
        sample_rate=int(tagger.sample_rate),
        training={
            "files": int(len(np.unique(groups))),
            "windows": int(len(features)),
            "hidden": settings.hidden,
            "weight_decay": settings.weight_decay,
            "held_out": {"summary": summary, "classes": [c.as_dict() for c in figures]},
        },
    )
    return TrainingReport(
        head=head,
        classes=figures,
        summary=summary,
        failures=examples.failures,
        warnings=warnings,
        n_files=int(len(np.unique(groups))),
        n_windows=int(len(features)),
        embedding_seconds=embedding_seconds,
        training_seconds=time.monotonic() - fitting,
    )


@dataclass
class _Examples:
    features: np.ndarray  # [n, C] float64
    labels: np.ndarray  # [n, K] bool
    groups: np.ndarray  # [n] the file each window comes from
    failures: list[TagFailure]


def _embed(
    data: TrainingData, tagger: Any, settings: TrainingSettings, on_outcome: Callable[[TagResult | TagFailure], None] | None
) -> _Examples:
    features: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    failures: list[TagFailure] = []
    workers = settings.workers
    if workers is None:
        workers = max(1, min((os.cpu_count() or 2) - 1, 8, len(data.files) - 1)) if len(data.files) > 1 else 0
    outcomes = tagger.tag_many((f.path for f in data.files), window=settings.window, hop=settings.hop, workers=workers)
    try:
        for number, (file, outcome) in enumerate(zip(data.files, outcomes)):
            outcome.source = file.path
            if on_outcome is not None:
                on_outcome(outcome)
            if isinstance(outcome, TagFailure):
                failures.append(outcome)
                continue
            features.append(np.asarray(outcome.embeddings, dtype=np.float64))
            labels.append(window_labels(file, outcome.starts, outcome.ends, outcome.duration, data.classes))
            groups.append(np.full(len(outcome.starts), number, dtype=np.int64))
    finally:
        getattr(outcomes, "close", lambda: None)()  # stops the decode workers now, also on Ctrl-C
    if not features:
        raise UsageError(
            "no training file could be read" + (f" ({failures[0].source}: {failures[0].reason})" if failures else "")
        )
    return _Examples(np.concatenate(features), np.concatenate(labels), np.concatenate(groups), failures)


def fit_layers(
    features: np.ndarray, labels: np.ndarray, *, single: bool, settings: TrainingSettings
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Feature statistics and fitted layers `(mean, scale, [(weight, bias), ...])` for `[n, C]` features
    and `[n, K]` boolean labels (see the module docstring for the loss)."""
    import torch

    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale = np.where(scale > 1e-12 * max(float(np.abs(mean).max(initial=0.0)), 1.0), scale, 1.0)
    x = torch.from_numpy((features - mean) / scale).float()
    y = torch.from_numpy(labels.astype(np.float32))
    n, k = labels.shape
    generator = torch.Generator().manual_seed(settings.seed)
    sizes = [x.shape[1], *([settings.hidden] if settings.hidden else []), k]
    parameters = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        weight = (
            (torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound
            if settings.hidden
            else torch.zeros(fan_in, fan_out)
        )
        parameters += [weight.requires_grad_(), torch.zeros(fan_out, requires_grad=True)]
    if single:
        counts = y.sum(dim=0).clamp(min=1)
        example_weight = y @ (n / (k * counts))  # each class weighs n / k in total
        target = y.argmax(dim=1)
    else:
        positives = y.sum(dim=0).clamp(min=1)
        negatives = (n - y.sum(dim=0)).clamp(min=1)
        # positives and negatives of each class weigh n / 2 each
        class_weight = torch.where(y > 0, n / (2 * positives), n / (2 * negatives))

    def logits() -> torch.Tensor:
        h = x
        for layer in range(0, len(parameters), 2):
            if layer:
                h = torch.relu(h)
            h = h @ parameters[layer] + parameters[layer + 1]
        return h

    def loss() -> torch.Tensor:
        out = logits()
        if single:
            data_loss = (torch.nn.functional.cross_entropy(out, target, reduction="none") * example_weight).mean()
        else:
            data_loss = (torch.nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none") * class_weight).mean()
        penalty = sum((w**2).sum() for w in parameters[::2])
        return data_loss + settings.weight_decay * penalty

    optimizer = torch.optim.LBFGS(
        parameters,
        lr=1.0,
        max_iter=settings.max_iterations,
        history_size=20,
        tolerance_grad=1e-5,
        tolerance_change=1e-7,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value

    # One thread: these products are small (thousands of rows), where OpenMP's threads mostly wait on
    # each other, and on a busy machine far worse (6 s against 53 s for 5000 windows and 64 hidden units,
    # 2 cores under load).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            optimizer.step(closure)
    finally:
        torch.set_num_threads(threads)
    layers = [
        (parameters[i].detach().numpy().copy(), parameters[i + 1].detach().numpy().copy()) for i in range(0, len(parameters), 2)
    ]
    return mean, scale, layers


def _cross_validate(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, single: bool, settings: TrainingSettings, folds: int
) -> np.ndarray:
    """Out-of-fold probabilities `[n, K]` of every window, from `folds` fits on the other folds' files."""
    fold_of_file = _deal_files(labels, groups, folds, settings.seed)
    fold = fold_of_file[groups]
    probabilities = np.zeros(labels.shape, dtype=np.float64)
    for f in range(folds):
        test = fold == f
        if not test.any() or test.all():
            continue
        mean, scale, layers = fit_layers(features[~test], labels[~test], single=single, settings=settings)
        head = ClassifierHead(
            classes=tuple(str(k) for k in range(labels.shape[1])),
            backbone=Backbone("", (), features.shape[1]),
            mean=mean,
            scale=scale,
            layers=layers,
            activation="softmax" if single else "sigmoid",
        )
        probabilities[test] = head.probabilities(features[test])
    return probabilities


def _deal_files(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold of each file: files shuffled, then dealt out class by class (rarest class first), so that
    each class's files spread over the folds."""
    rng = np.random.default_rng(seed)
    n_files = int(groups.max()) + 1
    file_labels = np.zeros((n_files, labels.shape[1]), dtype=bool)
    np.logical_or.at(file_labels, groups, labels)
    fold_of_file = np.full(n_files, -1, dtype=np.int64)
    next_fold = 0
    for k in np.argsort(file_labels.sum(axis=0), kind="stable"):
        members = rng.permutation(np.flatnonzero(file_labels[:, k] & (fold_of_file < 0)))
        for file in members:
            fold_of_file[file] = next_fold
            next_fold = (next_fold + 1) % folds
    return fold_of_file


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of `scores` ranking the `truth` positives (NaN without positives)."""
    truth = np.asarray(truth, dtype=bool)
    if not truth.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = truth[order]
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at[hits].mean())


def _figures(
    classes: Sequence[str], files: dict[str, int], labels: np.ndarray, probabilities: np.ndarray, single: bool
) -> tuple[list[ClassFigures], dict[str, float]]:
    if single:
        predicted = np.zeros_like(labels)
        predicted[np.arange(len(labels)), probabilities.argmax(axis=1)] = True
    else:
        predicted = probabilities >= 0.5
    figures = []
    for k, name in enumerate(classes):
        true_positive = float((predicted[:, k] & labels[:, k]).sum())
        figures.append(
            ClassFigures(
                name=name,
                files=files[name],
                windows=int(labels[:, k].sum()),
                precision=true_positive / max(float(predicted[:, k].sum()), 1.0),
                recall=true_positive / max(float(labels[:, k].sum()), 1.0),
                average_precision=average_precision(labels[:, k], probabilities[:, k]),
            )
        )
    if single:
        summary = {"accuracy": float((labels[np.arange(len(labels)), probabilities.argmax(axis=1)]).mean())}
    else:
        summary = {"mAP": float(np.nanmean([f.average_precision for f in figures]))}
    return figures, summary
