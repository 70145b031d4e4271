"""The Python API that the CLI and users share: `Tagger(...).tag(...)` -> `TagResult`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Union

import numpy as np
import torch

from .audio import prepare_waveform
from .decoding import DecodeJob
from .engine import Failure, InferenceEngine, PipelineSettings, PipelineStats, WindowOutputs, run_pipeline
from .ensemble import load_members
from .errors import AudioError, UsageError
from .frontend import SAMPLE_RATE
from .labels import AudioSetClass, audioset_classes
from .windows import WindowGrid

Source = Union[str, Path, bytes, BinaryIO, np.ndarray, torch.Tensor]
AGGREGATES = ("mean", "max")


@dataclass
class TagResult:
    """Scores of one input: per clip and per window, with the windows' embeddings."""

    source: str
    duration: float  # seconds of audio
    scores: np.ndarray  # [K] clip scores, aggregated over windows
    starts: np.ndarray  # [n_windows] seconds
    ends: np.ndarray  # [n_windows] seconds (the last window may reach past the end: it is zero-padded)
    window_scores: np.ndarray  # [n_windows, K] sigmoid probabilities
    embeddings: np.ndarray  # [n_windows, C]
    classes: Sequence[AudioSetClass] = field(default_factory=audioset_classes, repr=False)
    warnings: list[str] = field(default_factory=list)  # parts of a damaged input that could not be decoded

    @property
    def embedding(self) -> np.ndarray:
        """Clip embedding: the mean of the windows' embeddings."""
        return self.embeddings.mean(axis=0)

    def top(self, k: int | None = 10, *, threshold: float | None = None) -> list[tuple[str, float]]:
        """`[(label, score), ...]`, best first."""
        return [(self.classes[i].name, float(self.scores[i])) for i in self.top_indices(k, threshold=threshold)]

    def top_indices(self, k: int | None = 10, *, threshold: float | None = None) -> list[int]:
        """Class indices, best first (ties by index), at most `k`, each scoring at least `threshold`."""
        return rank_classes(self.scores, top=k, threshold=threshold)


def rank_classes(
    scores: np.ndarray, *, top: int | None, threshold: float | None = None, classes: Sequence[int] | None = None
) -> list[int]:
    """Indices of the best classes of `scores` (among `classes` if given), best first, ties by index."""
    candidates = np.arange(len(scores)) if classes is None else np.asarray(classes, dtype=np.int64)
    order = candidates[np.lexsort((candidates, -scores[candidates]))] if len(candidates) else candidates
    if threshold is not None:
        order = order[scores[order] >= threshold]
    return [int(i) for i in (order if top is None else order[:top])]


@dataclass
class TagFailure:
    """An input that could not be tagged, and why (one line)."""

    source: str
    reason: str


class Tagger:
    """Tags audio with a published model (or an ensemble of them).

    >>> tagger = Tagger("dymn10_as")                      # doctest: +SKIP
    >>> tagger.tag("song.wav", window=10.0, hop=5.0).top(5)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | Sequence[str] | None = "dymn10_as",
        *,
        weights: str | Path | Sequence[str | Path] | None = None,
        device: str = "auto",
        batch_size: int | None = None,
        precision: str = "auto",
        compile: bool = False,
        sha256: str | None = None,
        progress: bool = False,
    ) -> None:
        members = load_members(model=None if weights is not None else model, weights=weights, sha256=sha256, progress=progress)
        self.name = members.name
        self.records = members.records
        self.network = members.network
        self.frontend_config = members.frontend
        self.engine = InferenceEngine(
            self.network, frontend=self.frontend_config, device=device, precision=precision, compile=compile
        )
        # (None: as many windows as keep the engine's lanes efficient, 16 with two lanes)
        self.batch_size = self.engine.preferred_batch_size if batch_size is None else batch_size
        self.classes = audioset_classes()

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def sample_rate(self) -> int:
        return self.frontend_config.sample_rate

    def tag(
        self,
        source: Source,
        *,
        sample_rate: int | None = None,
        window: float = 10.0,
        hop: float = 10.0,
        aggregate: str = "mean",
    ) -> TagResult:
        """Tag one input: a path, encoded bytes, a binary file object, or an array with its `sample_rate`."""
        outcome = next(iter(self.tag_many([source], sample_rate=sample_rate, window=window, hop=hop, aggregate=aggregate)))
        if isinstance(outcome, TagFailure):
            raise AudioError(outcome.reason)
        return outcome

    def tag_many(
        self,
        sources: Iterable[Source],
        *,
        sample_rate: int | None = None,
        window: float = 10.0,
        hop: float = 10.0,
        aggregate: str = "mean",
        workers: int = 0,
        stats: PipelineStats | None = None,
    ) -> Iterator[TagResult | TagFailure]:
        """Tag many inputs through one batched pipeline; yields one outcome per input, in input order.

        A bad input yields a `TagFailure` and the others go on. `workers > 0` decodes in that many
        processes while the network runs. `stats` collects where the time went.
        """
        if aggregate not in AGGREGATES:
            raise UsageError(f"unknown aggregate {aggregate!r}: use {' or '.join(AGGREGATES)}")
        grid = WindowGrid.from_seconds(window=window, hop=hop, sample_rate=self.sample_rate)
        names: list[str] = []

        def jobs() -> Iterator[DecodeJob]:
            for index, source in enumerate(sources):
                names.append(_describe(source))
                yield DecodeJob(index, self._decodable(source, sample_rate), name=names[-1])

        settings = PipelineSettings(grid=grid, batch_size=self.batch_size, workers=workers, sample_rate=self.sample_rate)
        for outcome in run_pipeline(jobs(), engine=self.engine, settings=settings, stats=stats):
            name = names[outcome.index]
            if isinstance(outcome, Failure):
                yield TagFailure(name, outcome.reason)
            else:
                yield self._result(name, outcome, grid, aggregate)

    def embed(self, source: Source, *, sample_rate: int | None = None, window: float = 10.0, hop: float = 10.0) -> np.ndarray:
        """Clip embedding of one input: the mean of its windows' embeddings, `[C]`."""
        return self.tag(source, sample_rate=sample_rate, window=window, hop=hop).embedding

    def _decodable(self, source: Source, sample_rate: int | None) -> Any:
        if isinstance(source, (np.ndarray, torch.Tensor)):
            if sample_rate is None:
                raise UsageError("an array needs its sample_rate")
            return _InMemoryAudio(prepare_waveform(source, source_rate=sample_rate, sample_rate=self.sample_rate))
        if isinstance(source, (str, Path, bytes, bytearray)):
            return os.fspath(source) if isinstance(source, Path) else source
        if hasattr(source, "read"):
            return source.read()
        raise UsageError(f"cannot tag an object of type {type(source).__name__}")

    def _result(self, name: str, outputs: WindowOutputs, grid: WindowGrid, aggregate: str) -> TagResult:
        return build_result(name, outputs, grid=grid, aggregate=aggregate, sample_rate=self.sample_rate, classes=self.classes)


def build_result(
    name: str, outputs: WindowOutputs, *, grid: WindowGrid, aggregate: str, sample_rate: int, classes: Sequence[AudioSetClass]
) -> TagResult:
    """The `TagResult` of one input from its windows' network outputs (also used by the Ray runner)."""
    # sigmoid, written so that large logits of either sign never overflow
    window_scores = np.exp(-np.logaddexp(0.0, -outputs.logits.astype(np.float64))).astype(np.float32)
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


class _InMemoryAudio(np.ndarray):
    """Marks an already decoded 32 kHz waveform so that the decode stage passes it through."""

    def __new__(cls, array: np.ndarray) -> _InMemoryAudio:
        return np.asarray(array, dtype=np.float32).view(cls)


def _describe(source: Source) -> str:
    if isinstance(source, (str, Path)):
        return os.fspath(source)
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return "<array>"
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return getattr(source, "name", None) if isinstance(getattr(source, "name", None), str) else "<stream>"
