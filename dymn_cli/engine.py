"""The inference stage: batches of windows -> logits and embeddings, and the streaming pipeline
that feeds it from decode workers and reassembles results per input, in input order."""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .decoding import DONE, ERROR, WINDOW, DecodeJob, decode_job, decode_worker
from .errors import UsageError
from .frontend import FrontEndConfig, LogMel
from .windows import WindowGrid


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto` picks CUDA when it is available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise UsageError(f"unknown device {device!r}: use auto, cpu or cuda") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but no CUDA device is available")
    return resolved


class InferenceEngine:
    """Front end + network on one device: `[B, N]` waveforms -> (logits `[B, K]`, embeddings `[B, C]`).

    On CUDA the front end runs on the GPU, host batches go through pinned memory with non-blocking
    copies, and the network runs under float16 autocast unless `precision="float32"`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        frontend: FrontEndConfig = FrontEndConfig(),
        device: str | torch.device = "auto",
        precision: str = "auto",
        compile: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        if precision == "auto":
            precision = "float16" if self.device.type == "cuda" else "float32"
        if precision not in ("float32", "float16", "bfloat16"):
            raise UsageError(f"unknown precision {precision!r}: use auto, float32, float16 or bfloat16")
        self.precision = precision
        self.frontend_config = frontend
        self.frontend = LogMel(frontend).to(self.device)
        self.model = model.to(self.device).eval()
        self._forward = torch.compile(self.model) if compile else self.model

    @torch.inference_mode()
    def __call__(self, waveforms: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        batch = torch.as_tensor(waveforms)
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        else:
            batch = batch.to(self.device)
        mels = self.frontend(batch.float())
        autocast = self.precision != "float32"
        dtype = torch.float16 if self.precision == "float16" else torch.bfloat16
        with torch.autocast(device_type=self.device.type, dtype=dtype, enabled=autocast):
            logits, embeddings = self._forward(mels)
        return logits.float().cpu().numpy(), embeddings.float().cpu().numpy()


@dataclass
class WindowOutputs:
    """Everything the network said about one input, window by window."""

    index: int
    n_samples: int
    logits: np.ndarray  # [n_windows, K]
    embeddings: np.ndarray  # [n_windows, C]


@dataclass
class Failure:
    index: int
    reason: str


@dataclass
class _Pending:
    windows: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    expected: int | None = None
    n_samples: int = 0
    failure: str | None = None

    def complete(self) -> bool:
        return self.failure is not None or (self.expected is not None and len(self.windows) == self.expected)


@dataclass(frozen=True)
class PipelineSettings:
    grid: WindowGrid
    batch_size: int = 16
    workers: int = 0  # 0: decode in this process
    sample_rate: int = 32_000
    block_seconds: float = 60.0


def run_pipeline(
    jobs: Iterable[DecodeJob], *, engine: InferenceEngine, settings: PipelineSettings
) -> Iterator[WindowOutputs | Failure]:
    """Decode, window, batch and infer every job; yield one outcome per job, in job order.

    Batches cross file boundaries; the network runs whenever a full batch is ready, and on a partial
    batch only when no decoded window is waiting.
    """
    if settings.batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {settings.batch_size}")
    source = _WorkerPool(settings) if settings.workers > 0 else _InlineDecoder(settings)
    pending: dict[int, _Pending] = {}
    batch: list[tuple[int, int, np.ndarray]] = []
    next_to_emit = 0
    with source:
        for message in source.messages(jobs):
            if message is None:  # the decoders have nothing ready right now
                if batch:
                    _infer(engine, batch, pending)
                    batch = []
            else:
                kind, index = message[0], message[1]
                state = pending.setdefault(index, _Pending())
                if kind == WINDOW:
                    batch.append((index, message[2], message[3]))
                    if len(batch) >= settings.batch_size:
                        _infer(engine, batch, pending)
                        batch = []
                elif kind == DONE:
                    state.expected, state.n_samples = message[2], message[3]
                else:
                    state.failure = message[2]
            if source.finished() and batch:
                _infer(engine, batch, pending)
                batch = []
            while next_to_emit in pending and pending[next_to_emit].complete():
                yield _outcome(next_to_emit, pending.pop(next_to_emit))
                next_to_emit += 1


def _infer(engine: InferenceEngine, batch: list[tuple[int, int, np.ndarray]], pending: dict[int, _Pending]) -> None:
    logits, embeddings = engine(np.stack([samples for _, _, samples in batch]))
    for row, (index, window_index, _) in enumerate(batch):
        pending[index].windows[window_index] = (logits[row], embeddings[row])


def _outcome(index: int, state: _Pending) -> WindowOutputs | Failure:
    if state.failure is not None:
        return Failure(index, state.failure)
    order = sorted(state.windows)
    return WindowOutputs(
        index=index,
        n_samples=state.n_samples,
        logits=np.stack([state.windows[k][0] for k in order]),
        embeddings=np.stack([state.windows[k][1] for k in order]),
    )


class _InlineDecoder:
    """Decodes in the calling process: for arrays in memory, tests, and `--workers 0`."""

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        self._done = False

    def __enter__(self) -> _InlineDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def finished(self) -> bool:
        return self._done

    def messages(self, jobs: Iterable[DecodeJob]) -> Iterator[tuple | None]:
        s = self.settings
        for job in jobs:
            yield from decode_job(job, grid=s.grid, sample_rate=s.sample_rate, block_seconds=s.block_seconds)
        self._done = True
        yield None


class _WorkerPool:
    """Decode worker processes feeding a bounded queue of windows."""

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        # spawn: workers never inherit the parent's threads, locks or CUDA context.
        context = multiprocessing.get_context("spawn")
        self._jobs = context.Queue()
        self._windows = context.Queue(maxsize=max(2 * settings.batch_size, 4 * settings.workers))
        self._processes = [
            context.Process(
                target=decode_worker,
                args=(self._jobs, self._windows, settings.grid, settings.sample_rate, settings.block_seconds),
                daemon=True,
            )
            for _ in range(settings.workers)
        ]
        self._done = False

    def __enter__(self) -> _WorkerPool:
        for process in self._processes:
            process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(timeout=5)
        self._jobs.cancel_join_thread()
        self._windows.cancel_join_thread()

    def finished(self) -> bool:
        return self._done

    def messages(self, jobs: Iterable[DecodeJob]) -> Iterator[tuple | None]:
        job_iter = iter(jobs)
        in_flight = 0
        exhausted = False
        max_in_flight = 4 * len(self._processes)
        while True:
            while not exhausted and in_flight < max_in_flight:
                job = next(job_iter, None)
                if job is None:
                    exhausted = True
                    for _ in self._processes:
                        self._jobs.put(None)
                else:
                    self._jobs.put(job)
                    in_flight += 1
            if exhausted and in_flight == 0:
                self._done = True
                yield None
                return
            try:
                message = self._windows.get_nowait()
            except queue.Empty:
                yield None  # let the consumer run a partial batch while it waits
                try:
                    message = self._windows.get(timeout=1.0)
                except queue.Empty:
                    self._check_alive()
                    continue
            if message[0] in (DONE, ERROR):
                in_flight -= 1
            yield message

    def _check_alive(self) -> None:
        dead = [p for p in self._processes if not p.is_alive()]
        if dead and len(dead) == len(self._processes):
            raise RuntimeError("every decode worker process has exited")
