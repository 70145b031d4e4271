"""The decode stage, started: decode worker processes (or this process) turning jobs into messages.

`start_decoding` starts it; `pipeline.run_pipeline` consumes its messages. Free of torch, so that a
run can start its workers before torch is imported and the model loads.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from multiprocessing import connection

from dymn_cli.audio.windows import WindowGrid
from dymn_cli.errors import DymnError
from dymn_cli.inference.cpus import usable_workers
from dymn_cli.inference.decode_stage import IDLE, DecodeJob, DecodeMessage, DoneMessage, ErrorMessage, decode_job, decode_worker
from dymn_cli.inference.script_rerun import SCRIPT_RERUN_EXIT, WORKER_ENV, ScriptRerunInWorkers, exit_if_script_rerun


@dataclass(frozen=True)
class PipelineSettings:
    grid: WindowGrid
    batch_size: int = 16
    workers: int = 0  # 0: decode in this process
    sample_rate: int = 32_000
    block_seconds: float = 60.0
    timeout: float | None = None  # seconds an input may take (see decode_stage.decode_job); None: no limit


def start_decoding(jobs: Iterable[DecodeJob], settings: PipelineSettings) -> Decoding:
    """Start decoding `jobs` now: in `settings.workers` processes, or in this process as it is
    consumed if that is 0. `run_pipeline` takes it over and stops it; a caller that does not get
    that far calls `close()`.

    A run starts this before it imports torch and loads the model, so that the workers have decoded
    the first windows by the time the network is ready.
    """
    settings = replace(settings, workers=usable_workers(settings.workers))
    source: Decoding = _WorkerPool(settings) if settings.workers > 0 else _InlineDecoder(settings)
    try:
        source.start(jobs)
    except BaseException:
        source.close()
        raise
    return source


class Decoding:
    """The decode stage of a pipeline, once started (`start_decoding`): the messages of its jobs."""

    settings: PipelineSettings

    def __enter__(self) -> Decoding:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop decoding (the workers, if any); safe to call more than once."""

    def start(self, jobs: Iterable[DecodeJob]) -> None:
        """Begin: start the workers, if any, and hand them the first jobs."""
        raise NotImplementedError

    def messages(self) -> Iterator[DecodeMessage | None]:
        """Messages as they come (see `decode_stage.py`); None when nothing is ready at the moment."""
        raise NotImplementedError

    def finished(self) -> bool:
        raise NotImplementedError

    def decodes_for(self, settings: PipelineSettings) -> bool:
        """Whether its windows are those a pipeline with `settings` needs."""
        return (self.settings.grid, self.settings.sample_rate) == (settings.grid, settings.sample_rate)


class _InlineDecoder(Decoding):
    """Decodes in the calling process: for arrays in memory, tests, and `--workers 0`."""

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        self._jobs: Iterable[DecodeJob] = ()
        self._done = False

    def start(self, jobs: Iterable[DecodeJob]) -> None:
        self._jobs = jobs

    def finished(self) -> bool:
        return self._done

    def messages(self) -> Iterator[DecodeMessage | None]:
        s = self.settings
        for job in self._jobs:
            yield from decode_job(job, grid=s.grid, sample_rate=s.sample_rate, block_seconds=s.block_seconds, timeout=s.timeout)
        self._done = True
        yield None


@dataclass(eq=False)
class _Worker:
    slot: int
    process: multiprocessing.process.BaseProcess
    jobs: connection.Connection  # this end sends DecodeJob (or None: stop)
    results: connection.Connection  # this end receives the worker's messages
    held: deque[int] = field(default_factory=deque)  # jobs sent to it and not finished, oldest first
    heard_from: bool = False
    received: int = 0  # messages received from it
    timed_out: bool = False  # killed because its job overran the timeout


class DecoderCrashLoop(DymnError):
    """The decode worker processes die as soon as they start: decoding cannot go on at all."""


class _WorkerPool(Decoding):
    """Decode worker processes, each with its own job and result pipes.

    Each job goes to the least busy worker, at most `JOBS_PER_WORKER` waiting on one. A worker that
    dies (a decoder crash, a kill) is replaced, and the run goes on: the job it was decoding (its
    shared slot says which) fails with "decoder crashed"; the jobs it held but had not started go to
    a new worker (a job that kills two workers between jobs, as they receive it, fails too).
    A worker killed by SIGTERM or SIGINT was stopped, not crashed: its jobs are all handed on.
    With a timeout, a worker checks its own job's time as it decodes; one stuck inside a decoder
    (or waiting on a stalled stream) past the timeout and a grace second is killed here, and its job
    fails with "timed out after N s".
    """

    TIMEOUT_GRACE = 1.0  # seconds a worker has to notice its own timeout before it is killed

    JOBS_PER_WORKER = 4  # the one being decoded and a few more: a worker never waits for work, even for short files
    FRUITLESS_DEATHS = 3  # per worker (5 at least; workers + 2 if none ever worked): deaths in a row of silent workers

    def __init__(self, settings: PipelineSettings) -> None:
        exit_if_script_rerun()
        self.settings = settings
        # spawn: workers never inherit the parent's threads, locks or CUDA context.
        self._context = multiprocessing.get_context("spawn")
        self._current = self._context.RawArray("q", settings.workers)  # the job each worker decodes
        self._queued = self._context.RawArray("q", settings.workers)  # messages each worker queued to send
        self._started = self._context.RawArray("d", settings.workers)  # when each worker's job began
        self._ahead = max(4, -(-2 * settings.batch_size // settings.workers))  # messages a worker may send ahead
        self._workers: list[_Worker] = []
        self._jobs: dict[int, tuple[DecodeJob, int]] = {}  # unfinished jobs sent out -> (job, deaths seen)
        self._retry: deque[int] = deque()
        self._inbox: deque[DecodeMessage] = deque()
        self._exhausted = False
        self._done = False
        self._fruitless_deaths = 0
        self._heard_any = False
        self._job_iter: Iterator[DecodeJob] = iter(())

    def close(self) -> None:
        self._stop()

    def start(self, jobs: Iterable[DecodeJob]) -> None:
        for slot in range(self.settings.workers):  # (if one fails to start, start_decoding stops the rest)
            self._workers.append(self._start(slot))
        self._job_iter = iter(jobs)
        self._dispatch(self._job_iter)  # the workers start decoding now

    def finished(self) -> bool:
        return self._done

    def messages(self) -> Iterator[DecodeMessage | None]:
        job_iter = self._job_iter
        while True:
            self._dispatch(job_iter)
            if self._inbox:
                yield self._inbox.popleft()
                continue
            if self._exhausted and not self._jobs:
                self._done = True
                yield None
                return
            if not self._receive(timeout=0):
                if not self._sending():
                    yield None  # let the consumer run a partial batch while the workers decode
                self._receive(timeout=1.0)
            self._kill_overdue()

    # ----------------------------------------------------------------------------------- internals

    def _kill_overdue(self) -> None:
        limit = self.settings.timeout
        if limit is None:
            return
        now = time.monotonic()
        for worker in list(self._workers):
            if self._current[worker.slot] != IDLE and now - self._started[worker.slot] > limit + self.TIMEOUT_GRACE:
                worker.timed_out = True
                worker.process.kill()
                self._bury(worker)

    def _sending(self) -> bool:
        """Whether a worker has a message queued or in the pipe that has not arrived: then it comes
        soon, whenever the scheduler next runs the worker's sending thread."""
        return any(self._queued[w.slot] > w.received for w in self._workers)

    def _start(self, slot: int) -> _Worker:
        s = self.settings
        self._current[slot] = IDLE
        self._queued[slot] = 0
        jobs_in, jobs_out = self._context.Pipe(duplex=False)
        results_in, results_out = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=decode_worker,
            args=(
                jobs_in,
                results_out,
                self._current,
                self._queued,
                slot,
                s.grid,
                s.sample_rate,
                s.block_seconds,
                self._ahead,
                s.timeout,
                self._started,
            ),
            daemon=True,
        )
        previous = os.environ.get(WORKER_ENV)
        os.environ[WORKER_ENV] = "1"  # (inherited by the worker as it starts)
        try:
            process.start()
        except BaseException:
            jobs_out.close()
            results_in.close()
            raise
        finally:
            if previous is None:
                os.environ.pop(WORKER_ENV, None)
            else:
                os.environ[WORKER_ENV] = previous
            # The worker's ends live in the worker: when it dies, this side sees EOF or a broken pipe.
            jobs_in.close()
            results_out.close()
        return _Worker(slot, process, jobs_out, results_in)

    def _stop(self) -> None:
        # Workers hold nothing worth a clean exit (their interpreter's teardown would cost a run 0.4 s).
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.kill()
        for worker in self._workers:
            worker.process.join()
            worker.jobs.close()
            worker.results.close()

    def _dispatch(self, job_iter: Iterator[DecodeJob]) -> None:
        """Hand jobs (retries first) to the least busy workers, as long as one has room."""
        while True:
            worker = min(self._workers, key=lambda w: len(w.held))
            if len(worker.held) >= self.JOBS_PER_WORKER:
                return
            if self._retry:
                index = self._retry.popleft()
                job = self._jobs[index][0]
            elif self._exhausted:
                return
            else:
                job = next(job_iter, None)
                if job is None:
                    self._exhausted = True
                    return
                index = job.index
                self._jobs[index] = (job, 0)
            worker.held.append(index)
            try:
                worker.jobs.send(job)
            except OSError:  # it died: its jobs, this one included, are dealt with like any dead worker's
                self._bury(worker)
            except (pickle.PicklingError, TypeError, AttributeError) as error:  # only this input fails
                worker.held.remove(index)
                del self._jobs[index]
                reason = f"cannot hand this input to a decode process ({type(error).__name__}: {error})"
                self._inbox.append(ErrorMessage(index, f"{job.label}: {reason}"))

    def _receive(self, timeout: float) -> bool:
        """Take one message from each worker that has one (none starves); bury the dead. Whether
        anything came."""
        before = len(self._inbox)
        handles: dict[object, _Worker] = {}
        for worker in self._workers:
            handles[worker.results] = worker
            handles[worker.process.sentinel] = worker
        for handle in connection.wait(list(handles), timeout):
            worker = handles[handle]
            if self._workers[worker.slot] is not worker:  # buried earlier in this round
                continue
            if handle is not worker.results:
                self._bury(worker)
                continue
            try:
                message = worker.results.recv()
            except (EOFError, OSError):
                self._bury(worker)
            else:
                worker.received += 1
                self._accept(worker, message)
        return len(self._inbox) > before

    def _accept(self, worker: _Worker, message: DecodeMessage) -> None:
        worker.heard_from = self._heard_any = True
        self._fruitless_deaths = 0
        index = message.index
        if isinstance(message, (DoneMessage, ErrorMessage)):
            self._jobs.pop(index, None)
            if index in worker.held:
                worker.held.remove(index)
        self._inbox.append(message)

    def _bury(self, worker: _Worker) -> None:
        """A worker died: keep what it sent, fail the job it was decoding, pass on the others, replace it."""
        process = worker.process
        process.join(timeout=5)
        if process.is_alive():  # its pipe broke but it lives on: it is no use any more
            process.kill()
            process.join()
        while True:  # what it sent before it died is still in its pipe
            try:
                if not worker.results.poll():
                    break
                message = worker.results.recv()
            except (EOFError, OSError):
                break
            self._accept(worker, message)
        if process.exitcode == SCRIPT_RERUN_EXIT:
            raise ScriptRerunInWorkers() from None  # (the broken pipe that told of it is no news to the user)
        decoding = self._current[worker.slot]
        how = _exit_description(process.exitcode)
        stopped = process.exitcode in (-signal.SIGTERM, -signal.SIGINT)  # stopped from outside, not a crash
        for position, index in enumerate(worker.held):
            job, deaths = self._jobs[index]
            # The job it was decoding is the culprit; dead between jobs, the one it was receiving may be.
            suspect = not stopped and (index == decoding if decoding != IDLE else position == 0)
            if worker.timed_out and index == decoding:
                del self._jobs[index]
                self._inbox.append(ErrorMessage(index, f"{job.label}: timed out after {self.settings.timeout:g} s"))
            elif suspect and (index == decoding or deaths >= 1):
                del self._jobs[index]
                self._inbox.append(ErrorMessage(index, f"{job.label}: decoder crashed ({how})"))
            else:
                self._jobs[index] = (job, deaths + suspect)
                self._retry.append(index)
        worker.held.clear()
        worker.jobs.close()
        worker.results.close()
        if not worker.heard_from and not worker.timed_out:  # a worker that cannot even start would be restarted for ever
            self._fruitless_deaths += 1
            # none ever worked: give up soon (every input would fail with "decoder crashed")
            limit = len(self._workers) + 2 if not self._heard_any else max(5, self.FRUITLESS_DEATHS * len(self._workers))
            if self._fruitless_deaths >= limit:
                raise DecoderCrashLoop(
                    f"the decode processes keep dying before they send anything ({how}); "
                    "--workers 0 decodes in this process instead"
                )
        self._workers[worker.slot] = self._start(worker.slot)


def _exit_description(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped responding"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
