"""The decode stage: audio sources -> resampled, windowed waveforms, in worker processes.

Kept free of torch so that worker processes start fast. Each worker takes jobs from a queue,
streams its file in blocks (flat memory whatever the file's length), cuts windows as the
stream goes and sends them to the inference stage through a bounded queue.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from .audio import stream_audio
from .errors import AudioError, DymnError
from .remote import is_uri, read_uri
from .windows import WindowCutter, WindowGrid

AudioSource = Union[str, Path, bytes, np.ndarray]

# Messages from the decode stage, as plain tuples (cheap to pickle):
#   ("window", job_index, window_index, samples[float32, window])
#   ("done", job_index, n_windows, n_samples)
#   ("error", job_index, reason)
WINDOW, DONE, ERROR = "window", "done", "error"


@dataclass(frozen=True)
class DecodeJob:
    index: int
    source: AudioSource  # a path, or the encoded bytes of a stream such as stdin
    name: str | None = None  # how messages name an in-memory source (e.g. <stdin>)


def decode_job(job: DecodeJob, *, grid: WindowGrid, sample_rate: int, block_seconds: float) -> Iterator[tuple]:
    """Decode one job into window messages, ending with a `done` or an `error` message."""
    cutter = WindowCutter(grid)
    try:
        for block in _blocks(job.source, sample_rate=sample_rate, block_seconds=block_seconds, name=job.name):
            if not np.isfinite(block).all():
                raise AudioError(f"{job.name or describe(job.source)}: contains NaN or infinite samples")
            for window_index, samples in cutter.feed(block):
                yield (WINDOW, job.index, window_index, samples)
        if cutter.n_samples == 0:
            raise AudioError(f"{job.name or describe(job.source)}: no audio samples")
        for window_index, samples in cutter.finish():
            yield (WINDOW, job.index, window_index, samples)
        yield (DONE, job.index, grid.count(cutter.n_samples), cutter.n_samples)
    except DymnError as error:
        yield (ERROR, job.index, str(error))
    except (OSError, ValueError, RuntimeError, MemoryError) as error:
        # A decoder failure that audio.py did not anticipate: report it for this input only.
        yield (ERROR, job.index, f"{job.name or describe(job.source)}: {type(error).__name__}: {error}")


def _blocks(source: AudioSource, *, sample_rate: int, block_seconds: float, name: str | None) -> Iterator[np.ndarray]:
    if isinstance(source, np.ndarray):  # already decoded and resampled by the caller
        return iter([source])
    if is_uri(source):  # s3://... and the like: fetched whole, then decoded from memory
        return stream_audio(read_uri(source), sample_rate=sample_rate, block_seconds=block_seconds, name=name or source)
    return stream_audio(source, sample_rate=sample_rate, block_seconds=block_seconds, name=name)


def describe(source: AudioSource) -> str:
    return "<stdin>" if isinstance(source, (bytes, bytearray)) else str(source)


def decode_worker(jobs, windows, grid: WindowGrid, sample_rate: int, block_seconds: float) -> None:
    """Worker process body: decode jobs until a `None` job arrives."""
    # The parent handles Ctrl-C and stops the workers; a worker must not die mid-message on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for job in iter(jobs.get, None):
        for message in decode_job(job, grid=grid, sample_rate=sample_rate, block_seconds=block_seconds):
            windows.put(message)
