"""The streaming pipeline: decode workers -> bounded queue of windows -> batches across inputs ->
the inference stage -> results reassembled per input, in input order.

Free of torch (the inference stage is any callable from a batch of windows to logits and embeddings),
so that a run can start its decode workers before torch is imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from dymn_cli.errors import UsageError
from dymn_cli.inference.decode_stage import DecodeJob, DoneMessage, ErrorMessage, WarningMessage, WindowMessage
from dymn_cli.inference.worker_pool import Decoding, PipelineSettings, start_decoding

Inference = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]
"""The inference stage: windows `[B, N]` -> (logits `[B, K]`, embeddings `[B, C]`), e.g. an `InferenceEngine`."""


@dataclass
class WindowOutputs:
    """Everything the network said about one input, window by window."""

    index: int
    n_samples: int
    logits: np.ndarray  # [n_windows, K]
    embeddings: np.ndarray  # [n_windows, C]
    warnings: list[str] = field(default_factory=list)  # what was lost decoding a damaged input


@dataclass
class Failure:
    index: int
    reason: str


@dataclass
class PendingInput:
    """An input's windows as they come back from the network, in any order, until it is complete
    (also the Ray runner's bookkeeping)."""

    windows: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    expected: int | None = None
    n_samples: int = 0
    failure: str | None = None
    warnings: list[str] = field(default_factory=list)

    def complete(self) -> bool:
        return self.failure is not None or (self.expected is not None and len(self.windows) == self.expected)

    def add_window(self, window_index: int, logits: np.ndarray, embedding: np.ndarray) -> None:
        """Keep what the network said about one window; an output that is not finite fails the input
        (never a NaN score in an output, never a label ranked on one)."""
        if not (np.isfinite(logits).all() and np.isfinite(embedding).all()):
            if self.failure is None:
                self.failure = (
                    f"the network's output is not a number (NaN or infinite) for window {window_index}: "
                    "a broken checkpoint or graph, or an overflow at this precision (torch engine: try --precision float32)"
                )
            return
        self.windows[window_index] = (logits, embedding)

    def outcome(self, index: int) -> WindowOutputs | Failure:
        """What the complete input `index` comes to: its windows in order, or its failure."""
        if self.failure is not None:
            return Failure(index, self.failure)
        order = sorted(self.windows)
        return WindowOutputs(
            index=index,
            n_samples=self.n_samples,
            logits=np.stack([self.windows[k][0] for k in order]),
            embeddings=np.stack([self.windows[k][1] for k in order]),
            warnings=self.warnings,
        )


@dataclass
class PipelineStats:
    """Where a pipeline's time went, in wall-clock seconds of the thread that runs it: batches through
    the front end and network (`inference`), and waiting for decoded windows from the workers, or
    decoding them itself when there are none (`decoding`)."""

    inference: float = 0.0
    decoding: float = 0.0
    batches: int = 0
    windows: int = 0


def run_pipeline(
    jobs: Iterable[DecodeJob] | Decoding,
    *,
    engine: Inference,
    settings: PipelineSettings,
    stats: PipelineStats | None = None,
) -> Iterator[WindowOutputs | Failure]:
    """Decode, window, batch and infer every job; yield one outcome per job, in job order.

    `jobs` may be a decoding already started (`start_decoding`) with the same window grid and sample
    rate. Batches of `settings.batch_size` cross file boundaries; the network runs whenever a full
    batch is ready, and on a partial batch only when no decoded window is waiting. `stats`, if given,
    is added to as the run goes.
    """
    if settings.batch_size < 1:
        if isinstance(jobs, Decoding):
            jobs.close()
        raise UsageError(f"batch size must be at least 1, got {settings.batch_size}")
    if isinstance(jobs, Decoding) and not jobs.decodes_for(settings):
        jobs.close()
        raise ValueError("the decoding was started for another window grid or sample rate")
    stats = stats if stats is not None else PipelineStats()
    source = jobs if isinstance(jobs, Decoding) else start_decoding(jobs, settings)
    pending: dict[int, PendingInput] = {}
    batch: list[WindowMessage] = []
    next_to_emit = 0

    def infer() -> None:
        start = time.perf_counter()
        _infer(engine, batch, pending)
        stats.inference += time.perf_counter() - start
        stats.batches += 1
        stats.windows += len(batch)
        batch.clear()

    with source:
        messages = source.messages()
        while True:
            start = time.perf_counter()
            message = next(messages, _END)
            stats.decoding += time.perf_counter() - start
            if message is _END:
                break
            if message is None:  # the decoders have nothing ready right now
                if batch:
                    infer()
            elif message.index >= next_to_emit:  # (an input already given out hears nothing more)
                state = pending.setdefault(message.index, PendingInput())
                if isinstance(message, WindowMessage):
                    batch.append(message)
                    if len(batch) >= settings.batch_size:
                        infer()
                elif isinstance(message, DoneMessage):
                    state.expected, state.n_samples = message.n_windows, message.n_samples
                elif isinstance(message, WarningMessage):
                    state.warnings.append(message.text)
                elif isinstance(message, ErrorMessage) and state.failure is None:
                    state.failure = message.reason
            if source.finished() and batch:
                infer()
            while next_to_emit in pending and pending[next_to_emit].complete():
                yield pending.pop(next_to_emit).outcome(next_to_emit)
                next_to_emit += 1


_END = object()


def _infer(engine: Inference, batch: list[WindowMessage], pending: dict[int, PendingInput]) -> None:
    logits, embeddings = engine(np.stack([window.samples for window in batch]))
    for row, window in enumerate(batch):
        state = pending.get(window.index)
        if state is not None:  # else the input failed (and was given out) after these windows were cut
            state.add_window(window.window_index, logits[row], embeddings[row])
