"""The decode stage: audio sources -> resampled, windowed waveforms, in worker processes.

Kept free of torch so that worker processes start fast. Each worker takes jobs from its own pipe,
streams its file in blocks (flat memory whatever the file's length), cuts windows as the
stream goes and sends them to the inference stage through its own pipe, a bounded number ahead.
A worker writes the job it is decoding to a shared slot, so that if it dies (a decoder crash) the
inference stage knows which input to blame and which ones to hand to a new worker.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dymn_cli.audio.decode import AudioDecodeWarning, Deadline, stream_audio
from dymn_cli.audio.uris import is_uri, read_uri
from dymn_cli.audio.windows import WindowCutter, WindowGrid
from dymn_cli.errors import AudioError, DymnError
from dymn_cli.inference.allocator import keep_freed_memory
from dymn_cli.terminal import quiet_native_stderr

JobSource = str | Path | bytes | np.ndarray
"""What a decode job decodes: a path or URI, the encoded bytes of a stream (stdin), or a waveform
already decoded and resampled."""


# Messages from the decode stage about the job numbered `index`: named tuples, cheap to pickle.


class WindowMessage(NamedTuple):
    """One window of the job's audio, `samples` float32 of the grid's window length."""

    index: int
    window_index: int
    samples: np.ndarray


class DoneMessage(NamedTuple):
    """The job is decoded: `n_windows` windows were sent, cut from `n_samples` samples."""

    index: int
    n_windows: int
    n_samples: int


class ErrorMessage(NamedTuple):
    """The job failed (one line, naming the input); no more messages come about it."""

    index: int
    reason: str


class WarningMessage(NamedTuple):
    """Part of a damaged input was lost (the text does not repeat its name); decoding goes on."""

    index: int
    text: str


DecodeMessage = WindowMessage | DoneMessage | ErrorMessage | WarningMessage


@dataclass(frozen=True)
class DecodeJob:
    index: int
    source: JobSource  # a path, or the encoded bytes of a stream such as stdin
    name: str | None = None  # how messages name an in-memory source (e.g. <stdin>)
    failure: str | None = None  # the input failed before decoding (e.g. an array of the wrong shape)

    @property
    def label(self) -> str:
        """How messages about this job name it."""
        if self.name:
            return self.name
        return "<stdin>" if isinstance(self.source, (bytes, bytearray)) else str(self.source)


def decode_job(
    job: DecodeJob, *, grid: WindowGrid, sample_rate: int, block_seconds: float, timeout: float | None = None
) -> Iterator[DecodeMessage]:
    """Decode one job into window messages, ending with a `done` or an `error` message.

    This is the one place where every decode path (worker processes, decoding in process, standard
    input, arrays) isolates an input: whatever decoding it raises becomes one `error` message, a
    one-line reason that names the input, and the next input goes on. An `AudioDecodeWarning` (part
    of a damaged input could not be decoded) becomes a `warning` message instead of a Python warning
    printed by whichever process decodes. With `timeout` (seconds), an input that is not decoded
    by then (counted from here, the consumer's time included) fails with "timed out after N s".
    """
    if job.failure is not None:
        yield ErrorMessage(job.index, job.failure)
        return
    cutter = WindowCutter(grid)
    deadline = Deadline(timeout) if timeout is not None else None
    try:
        blocks = _blocks(job.source, sample_rate=sample_rate, block_seconds=block_seconds, name=job.name, deadline=deadline)
        for block in _capturing_decode_warnings(blocks):
            if isinstance(block, str):
                yield WarningMessage(job.index, _without_name(block, job.label))
                continue
            if not np.isfinite(block).all():
                raise AudioError(f"{job.label}: contains NaN or infinite samples")
            for window_index, samples in cutter.feed(block):
                yield WindowMessage(job.index, window_index, samples)
        if cutter.n_samples == 0:
            raise AudioError(f"{job.label}: no audio samples")
        for window_index, samples in cutter.finish():
            yield WindowMessage(job.index, window_index, samples)
        yield DoneMessage(job.index, grid.count(cutter.n_samples), cutter.n_samples)
    except DymnError as error:
        yield ErrorMessage(job.index, failure_reason(error, job.label))
    except MemoryError:
        yield ErrorMessage(job.index, f"{job.label}: out of memory decoding this input")
    except Exception as error:  # noqa: BLE001 - a decoder failure the audio decoders did not anticipate: this input only
        yield ErrorMessage(job.index, failure_reason(error, job.label))


def failure_reason(error: BaseException, label: str) -> str:
    """`label: reason` in one line, never empty: a `DymnError`'s own message (which names the
    input), else the exception's type and text."""
    if isinstance(error, DymnError) and str(error).strip():
        text = str(error).strip()  # (ours: one line already, though the name in it may hold anything)
        return text if text.startswith(label) else f"{label}: {text}"
    text = " ".join(str(error).split())
    kind = type(error).__name__
    return f"{label}: decoder error ({kind}: {text})" if text else f"{label}: decoder error ({kind})"


def _blocks(
    source: JobSource, *, sample_rate: int, block_seconds: float, name: str | None, deadline: Deadline | None
) -> Iterator[np.ndarray]:
    if isinstance(source, np.ndarray):  # already decoded and resampled by the caller
        return iter([source])
    if is_uri(source):  # s3://... and the like: fetched whole, then decoded from memory
        source, name = read_uri(source), name or source
    return stream_audio(source, sample_rate=sample_rate, block_seconds=block_seconds, name=name, deadline=deadline)


def _capturing_decode_warnings(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray | str]:
    """`blocks`, with the text of each `AudioDecodeWarning` raised while making them put in between.

    The capture spans each `next()` only, never a `yield`: the consumer's own warnings are untouched.
    Other warnings are passed on as they were.
    """
    iterator = iter(blocks)
    while True:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            block = next(iterator, None)
        for warning in caught:
            if issubclass(warning.category, AudioDecodeWarning):
                yield str(warning.message)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if block is None:
            return
        yield block


def _without_name(text: str, name: str) -> str:
    """The audio decoders start their messages with the input's name; a `warning` message is about one input anyway."""
    return text[len(name) + 2 :] if text.startswith(f"{name}: ") else text


IDLE = -1
"""A worker's slot while it decodes no job."""


WORKER_FAILED = 70
"""A decode worker's exit code when something outside any one decoding failed (a job that cannot be
unpickled, say): the parent treats it like any death, and nothing is printed."""


def decode_worker(
    jobs,
    results,
    current,
    queued,
    slot: int,
    grid: WindowGrid,
    sample_rate: int,
    block_seconds: float,
    ahead: int,
    timeout: float | None = None,
    started=None,
) -> None:
    """Worker process body: decode the jobs that arrive on `jobs` until `None` comes (or the parent goes).

    `jobs` and `results` are this worker's own pipe ends, so that a worker that dies mid-message
    garbles nothing but its own pipe. Two threads keep both moving whatever the decoder does: one
    takes jobs as soon as they are sent (the parent never waits on a busy worker), one sends
    messages, at most `ahead` of them waiting. `current[slot]` is the index of the job being
    decoded, `IDLE` between jobs, and `started[slot]` when that job began (`time.monotonic()`, the
    same clock in every process): the parent kills a worker whose job overran `timeout`.
    `queued[slot]` counts the messages queued for sending (written by the decoding thread only): the
    parent, which counts those it received, can tell a message on its way from a worker that is still
    decoding. Any failure outside a job's decoding ends the worker at once, without a traceback: the
    parent reports the job it held in one line.
    """
    # Ctrl-C reaches the whole process group: the parent handles it and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_native_stderr()
    keep_freed_memory()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    outbox: queue.Queue = queue.Queue(maxsize=max(ahead, 1))

    def receive() -> None:
        try:
            while (job := jobs.recv()) is not None:
                inbox.put(job)
        except (EOFError, OSError):
            pass  # the parent is gone
        except BaseException:  # noqa: BLE001 - e.g. a job that cannot be unpickled here
            os._exit(WORKER_FAILED)
        inbox.put(None)

    def send() -> None:
        try:
            for message in iter(outbox.get, None):
                results.send(message)
        except OSError:  # the parent is gone: nobody waits for these results
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(WORKER_FAILED)

    threading.Thread(target=receive, daemon=True).start()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        for job in iter(inbox.get, None):
            if started is not None:
                started[slot] = time.monotonic()
            current[slot] = job.index
            for message in decode_job(job, grid=grid, sample_rate=sample_rate, block_seconds=block_seconds, timeout=timeout):
                queued[slot] += 1
                outbox.put(message)
            current[slot] = IDLE
    except BaseException:  # noqa: BLE001 - decode_job reports what decoding raises; this is anything else
        os._exit(WORKER_FAILED)
    outbox.put(None)
    sender.join()
