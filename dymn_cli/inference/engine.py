"""The inference stage: batches of windows -> logits and embeddings, on the CPU or a GPU.
(`pipeline.py` feeds it from the decode workers.)"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from dymn_cli.errors import UsageError
from dymn_cli.models.common import refresh_all
from dymn_cli.models.frontend import FrontEndConfig, LogMel


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


WINDOWS_PER_LANE = 8
"""The default share of a CPU lane: on one thread a call of fewer windows costs more per window, and
8 is where dymn10 stops gaining (`benchmarks/cpu_paths.py`, item 3)."""
CUDA_BATCH_SIZE = 16  # (not yet measured on a GPU)


class InferenceEngine:
    """Front end + network on one device: `[B, N]` waveforms -> (logits `[B, K]`, embeddings `[B, C]`).

    On the CPU a batch is shared out between `lanes` threads (default: `torch.get_num_threads()`, so
    `OMP_NUM_THREADS` and `torch.set_num_threads` set it), each running its share of the windows with
    single-threaded torch. That beats one multi-threaded call: this network is a long chain of small
    operations, where threads mostly wait for each other at every one, and a core taken by a decode
    worker stalls all the others. Within a lane the front end runs one window at a time, whose STFT
    stays in cache. (One lane on CUDA, for a compiled model, and where torch's threads are not
    OpenMP's, whose thread count is per thread.)

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
        lanes: int | None = None,
    ) -> None:
        self.device = resolve_device(device)
        if precision == "auto":
            precision = "float16" if self.device.type == "cuda" else "float32"
        if precision not in ("float32", "float16", "bfloat16"):
            raise UsageError(f"unknown precision {precision!r}: use auto, float32, float16 or bfloat16")
        if lanes is not None and lanes < 1:
            raise UsageError(f"lanes must be at least 1, got {lanes}")
        self.precision = precision
        self.frontend_config = frontend
        self.frontend = LogMel(frontend).to(self.device)
        self.model = model.to(self.device).eval()
        refresh_all(self.model)  # derive the inference constants now, not in the lanes' first calls
        self.compiled = compile
        self._forward = torch.compile(self.model) if compile else self.model
        # (A compiled model runs in one lane: torch.compile's caches are not meant for concurrent first calls.)
        one_lane = self.device.type != "cpu" or compile or not _per_thread_thread_counts()
        self.lanes = 1 if one_lane else lanes or torch.get_num_threads()
        self._pool = _single_threaded_pool(self.lanes) if self.lanes > 1 else None

    @property
    def preferred_batch_size(self) -> int:
        """Windows per call that keep every lane efficient: `WINDOWS_PER_LANE` each on the CPU."""
        return WINDOWS_PER_LANE * self.lanes if self.device.type == "cpu" else CUDA_BATCH_SIZE

    def __call__(self, waveforms: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if self.compiled:  # (an eager forward refreshes itself; a compiled one skips that, so it is done here)
            refresh_all(self.model)
        batch = torch.as_tensor(waveforms)
        if self._pool is None:
            outputs = [self._run(batch)]
        else:  # (even a single window: in a lane, on one thread, as every other window is computed)
            outputs = list(self._pool.map(self._run, batch.tensor_split(min(self.lanes, max(len(batch), 1)))))
        logits = torch.cat([logits for logits, _ in outputs])
        embeddings = torch.cat([embeddings for _, embeddings in outputs])
        return logits.float().cpu().numpy(), embeddings.float().cpu().numpy()

    @torch.inference_mode()
    def _run(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        else:
            batch = batch.to(self.device)
        batch = batch.float()
        if self.device.type == "cpu":
            mels = torch.cat([self.frontend(window) for window in batch.split(1)])  # (batched: ~4x slower)
        else:
            mels = self.frontend(batch)
        autocast = self.precision != "float32"
        dtype = torch.float16 if self.precision == "float16" else torch.bfloat16
        with torch.autocast(device_type=self.device.type, dtype=dtype, enabled=autocast):
            return self._forward(mels)


def _per_thread_thread_counts() -> bool:
    """Whether torch's intra-op threads are OpenMP's, where `set_num_threads` holds per thread."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def _single_threaded_pool(lanes: int) -> ThreadPoolExecutor:
    """`lanes` threads whose torch calls run on one thread each, started now.

    torch's thread count is per thread once set (OpenMP's ICV), but `set_num_threads` also changes the
    count that threads started later begin with: the caller's is put back once every lane has set its own.
    """
    previous = torch.get_num_threads()
    started = threading.Barrier(lanes + 1)

    def single_threaded() -> None:
        torch.get_num_threads()  # (torch's lazy per-thread setup first, or it would undo the next line)
        torch.set_num_threads(1)
        started.wait()

    pool = ThreadPoolExecutor(lanes, thread_name_prefix="dymn-lane", initializer=single_threaded)
    for _ in range(lanes):
        pool.submit(lambda: None)
    started.wait()
    torch.set_num_threads(previous)
    return pool
