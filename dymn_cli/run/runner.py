"""A labelling run: inputs -> tagger -> writers, with per-input isolation, resume and clean stops.

This is the library function behind `dymn-tag INPUTS...`; the CLI only parses options into it.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dymn_cli.errors import Interrupted, SignalReceived, UsageError
from dymn_cli.inference.decode_stage import DecodeJob
from dymn_cli.inference.pipeline import PipelineStats
from dymn_cli.inference.worker_pool import Decoding, PipelineSettings, start_decoding
from dymn_cli.models.frontend_config import FrontEndConfig
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.run.inputs import STDIN, Input, InputProblem, expand_inputs, read_file_list
from dymn_cli.run.shards import DEFAULT_PART_SIZE, Shard, part_stem, select_shard
from dymn_cli.tagging import AudioTagger
from dymn_cli.writers.base import OutputOptions, Writer
from dymn_cli.writers.parts import part_writer
from dymn_cli.writers.registry import writer_class

log = logging.getLogger("dymn_cli")

TaggerOrFactory = AudioTagger | Callable[[], AudioTagger]
"""A tagger, or what builds one (a tagger class, a function): built only once the inputs and the
options have been checked, since building it imports torch and loads the model."""


class ResultSink(Protocol):
    """Anything that consumes outcomes as they come: output writers, embedding and event exports."""

    def write(self, outcome: TagResult | TagFailure) -> None: ...

    def close(self) -> None: ...


@dataclass
class RunSummary:
    tagged: int = 0
    failed: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    elapsed: float = 0.0
    failures: list[TagFailure] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)
    interrupted: Interrupted | None = None
    load_seconds: float = 0.0  # loading the model (0: a tagger was passed in ready)
    pipeline: PipelineStats = field(default_factory=PipelineStats)

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return self.interrupted.exit_code
        if self.problems:
            return UsageError.exit_code
        return 1 if self.failures else 0

    def line(self) -> str:
        stopped = f", {self.interrupted}" if self.interrupted else ""
        return (
            f"{self.tagged} tagged, {self.failed} failed, {self.skipped} skipped, "
            f"{self.audio_seconds / 3600:.3f} h of audio in {self.elapsed:.1f} s{self.timings()}{stopped}"
        )

    def timings(self) -> str:
        """Where the time went, when the run tagged anything on this machine: whether the network or
        the decoding limited the speed."""
        stats = self.pipeline
        if not stats.windows or self.elapsed <= 0:
            return ""
        load = f"model load {self.load_seconds:.1f} s, " if self.load_seconds else ""
        return (
            f" ({self.audio_seconds / self.elapsed:.0f}x realtime; {load}"
            f"{stats.windows} window{'s' if stats.windows != 1 else ''} through the network {stats.inference:.1f} s, "
            f"waiting for decoded audio {stats.decoding:.1f} s)"
        )


@dataclass(frozen=True)
class RunSettings:
    window: float = 10.0
    hop: float = 10.0
    aggregate: str = "mean"
    workers: int | None = None  # None: from the CPU count (none for standard input alone)
    recursive: bool = True
    # Start the decode workers before the tagger (and torch) loads: its `tag_many` takes `decoding=`.
    decode_first: bool = False
    # With decode_first: the batch size asked for (None: the engine's default), which sets how far
    # the workers decode ahead before the model, and with it the batch size, is known.
    batch_size: int | None = None
    # Seconds an input may take to decode and tag before it fails ("timed out after N s"); None: no limit.
    file_timeout: float | None = None


def collect_inputs(
    paths: Sequence[str], *, files_from: str | None, recursive: bool, problems: list[InputProblem]
) -> list[Input]:
    """Inputs named on the command line and in a file list, each once, in the order given."""
    if files_from == STDIN and STDIN in paths:
        raise UsageError("standard input cannot carry both audio (-) and a file list (--files-from -)")
    named = list(paths)
    inputs = list(expand_inputs(named, recursive=recursive, problems=problems))
    if files_from is not None:
        listed = expand_inputs(read_file_list(files_from), recursive=recursive, problems=None)
        seen = {i.path for i in inputs}
        inputs += [i for i in listed if i.path not in seen]
    if not named and files_from is None:
        raise UsageError("no input: name files or folders, - for standard input, or --files-from")
    return inputs


def label_inputs(
    paths: Sequence[str],
    *,
    tagger: TaggerOrFactory,
    output: Path | None = None,
    format: str | None = None,
    options: OutputOptions = OutputOptions(),
    settings: RunSettings = RunSettings(),
    files_from: str | None = None,
    resume: bool = False,
    extra_sinks: Sequence[ResultSink] = (),
    stdout_is_terminal: bool = False,
    on_outcome: Callable[[TagResult | TagFailure], None] | None = None,
    on_start: Callable[[list[Input]], None] | None = None,
    parts_dir: Path | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    shard: Shard | None = None,
) -> RunSummary:
    """Tag every input and write the outcomes; a bad input is reported and the others go on.

    With `resume`, inputs already recorded in `output` are carried over instead of tagged again, and
    the final output equals that of an uninterrupted run. `tagger` may be a factory: it is called only
    once the inputs and options have been checked, so that a usage error never waits for a model.
    `parts_dir` writes part files of `part_size` inputs into a folder instead of `output`, and `shard`
    tags only that shard of the inputs (see `dymn_cli.run.shards`).
    """
    started = time.monotonic()
    summary = RunSummary()
    FrontEndConfig().window_grid(window=settings.window, hop=settings.hop)  # checked before any work
    if parts_dir is not None:
        if output is not None:
            raise UsageError("write either a file (-o) or part files in a folder (--output-dir), not both")
        writer_type: Any = part_writer(format, parts_dir, part_size=part_size, stem=part_stem(shard), resume=resume)
        output = parts_dir
    else:
        writer_type = writer_class(format, output, stdout_is_terminal=stdout_is_terminal)
    inputs = collect_inputs(paths, files_from=files_from, recursive=settings.recursive, problems=summary.problems)
    if not inputs and summary.problems and files_from is None:
        raise UsageError("; ".join(f"{p.path}: {p.reason}" for p in summary.problems))
    if shard is not None:
        inputs = select_shard(inputs, shard)
    writer_type.validate(options=options, target=output, inputs=inputs)
    run_settings = {"window": settings.window, "hop": settings.hop, "aggregate": settings.aggregate, **options.settings()}
    previous = _previous_records(writer_type, output, options, run_settings) if resume else {}
    todo = [i for i in inputs if i.path not in previous]
    summary.skipped = len(inputs) - len(todo)
    workers = _worker_count(settings.workers, todo, decode_first=settings.decode_first)
    early = _decode_first(todo, settings, workers) if settings.decode_first else None
    try:
        if not isinstance(tagger, AudioTagger):  # a factory (which imports torch only now)
            loading = time.monotonic()
            tagger = tagger()
            summary.load_seconds = time.monotonic() - loading
            if not isinstance(tagger, AudioTagger):
                raise TypeError(f"the tagger factory made a {type(tagger).__name__}, not an AudioTagger")
        if early is not None and not tagger.takes_decoding:  # (e.g. a RayTagger decodes on its cluster)
            early.close()
            early = None
        header = {
            "model": tagger.name,
            "settings": {**run_settings, "sample_rate": tagger.sample_rate},
        }
        head = getattr(tagger, "head", None)
        if head is not None:  # (its classes are in the settings; here where they come from)
            header["head"] = {"path": head.path, "classes": list(head.classes), "backbone": head.backbone.as_dict()}
        writer = writer_type(output, options=options, header=header)
        if on_start is not None:
            on_start(todo)
    except BaseException:
        if early is not None:
            early.close()
        raise
    sinks: list[ResultSink] = [writer, *extra_sinks]
    carried = deque(i for i in inputs if i.path in previous)
    position = {i.path: n for n, i in enumerate(inputs)}
    outcomes: Any = iter(())
    with _signals_as_exceptions() as stop:
        try:
            outcomes = tagger.tag_many(
                (_read_source(i) for i in todo),
                window=settings.window,
                hop=settings.hop,
                aggregate=settings.aggregate,
                workers=workers,
                stats=summary.pipeline,
                decoding=early,
                timeout=settings.file_timeout,
            )
            for item, outcome in zip(todo, outcomes):
                # Keep the input order: records carried over from the previous run that come first.
                while carried and position[carried[0].path] < position[item.path]:
                    done = carried.popleft()
                    writer.write_existing(done.path, previous[done.path])
                outcome.source = item.path
                _count(summary, outcome)
                for sink in sinks:
                    sink.write(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
                if stop.received is not None:  # (in case something on the way swallowed the first raise)
                    raise SignalReceived(stop.received)
            while carried:
                done = carried.popleft()
                writer.write_existing(done.path, previous[done.path])
        except SignalReceived as stopped:
            summary.interrupted = Interrupted(stopped.signum)
        except KeyboardInterrupt:
            summary.interrupted = Interrupted(signal.SIGINT)
        finally:
            stop.disarm()  # a signal from here on is only noted: the outputs are never left half-written
            getattr(outcomes, "close", lambda: None)()  # stops the decode workers now
            if early is not None:
                early.close()  # (if the pipeline never started, it still holds them)
            for sink in sinks:
                sink.close()
            summary.elapsed = time.monotonic() - started
        if summary.interrupted is None and stop.received is not None:
            summary.interrupted = Interrupted(stop.received)
    return summary


def _previous_records(
    writer_type: type[Writer], output: Path | None, options: OutputOptions, settings: dict[str, Any]
) -> dict[str, Any]:
    if output is None:
        raise UsageError("--resume needs an output file (-o)")
    if not writer_type.resumable:
        raise UsageError(f"--resume does not work with the {writer_type.name} format")
    if not output.exists():
        return {}
    try:
        writer_type.check_resumable(output, options=options, settings=settings)
        return writer_type.read_existing(output)
    except (OSError, ValueError, KeyError, StopIteration) as error:
        raise UsageError(f"{output}: cannot resume from this file: {error}") from error


def _decode_first(todo: list[Input], settings: RunSettings, workers: int) -> Decoding | None:
    """Start the decode workers on `todo` at the front end's sample rate, before the model loads
    (about a second with torch's import, while the workers would otherwise wait). Not for decoding
    in this process or standard input (read once, by whichever decoding comes last)."""
    if workers == 0 or any(item.is_stdin for item in todo):
        return None
    frontend = FrontEndConfig()  # the published models' (a checkpoint with other settings decodes anew)
    grid = frontend.window_grid(window=settings.window, hop=settings.hop)
    # How far the workers decode ahead follows the batch size. Without one asked for, guess the CPU
    # engine's default (8 windows a lane, a lane per torch thread) from the CPUs this process may use,
    # at most 128 windows: 330 MB of read-ahead at 10 s.
    batch_hint = settings.batch_size or min(8 * _torch_threads_guess(), 128)
    pipeline = PipelineSettings(
        grid=grid, batch_size=grid.batch_size(batch_hint), workers=workers, sample_rate=frontend.sample_rate,
        timeout=settings.file_timeout,
    )
    return start_decoding((DecodeJob(n, item.path, name=item.path) for n, item in enumerate(todo)), pipeline)


def _torch_threads_guess() -> int:
    """torch's default thread count, without importing torch: OMP_NUM_THREADS, else the CPUs this
    process may run on (torch counts physical cores, so this may be twice as many)."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _worker_count(requested: int | None, todo: list[Input], *, decode_first: bool) -> int:
    """Decoding processes: one core is left to the network. With `decode_first` even a single file
    gets one: started before torch's import, it has decoded the first windows by the time the model
    is ready (standard input alone is still read and decoded in process). Otherwise a single input is
    decoded in process, where a worker would only cost its start. With standard input among the
    inputs everything is decoded in process: standard input is then decoded as it comes, however long
    (a worker would need it read whole into memory first)."""
    if requested is not None:
        return requested
    if not todo or any(item.is_stdin for item in todo) or (len(todo) == 1 and not decode_first):
        return 0
    return max(1, min((os.cpu_count() or 2) - 1, 8, len(todo)))


def _read_source(item: Input) -> Any:
    """What the tagger takes for an input: the path, or the standard input stream (named <stdin>)."""
    if not item.is_stdin:
        return item.path
    return sys.stdin.buffer if sys.stdin is not None else _ClosedStdin()


class _ClosedStdin:
    """Standard input when the process has none (started with `<&-`): reading it fails that input only."""

    name = "<stdin>"

    def read(self, size: int = -1) -> bytes:
        raise OSError(errno.EBADF, "standard input is closed")


def _count(summary: RunSummary, outcome: TagResult | TagFailure) -> None:
    if isinstance(outcome, TagFailure):
        summary.failed += 1
        summary.failures.append(outcome)
    else:
        summary.tagged += 1
        summary.audio_seconds += outcome.duration


class _StopSignals:
    """SIGINT and SIGTERM stop a run cleanly: the first one raises `SignalReceived` where the run is;
    after that, or once disarmed (the outputs are being finished), a signal is only noted."""

    def __init__(self) -> None:
        self.armed = True
        self.received: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received = signum
        if self.armed:
            self.armed = False
            raise SignalReceived(signum)

    def disarm(self) -> None:
        self.armed = False


@contextmanager
def _signals_as_exceptions() -> Iterator[_StopSignals]:
    """SIGTERM stops a run like Ctrl-C does: cleanly, keeping every finished result."""
    stop = _StopSignals()
    handled = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN] if _main_thread() else []
    previous = {signum: signal.signal(signum, stop) for signum in handled}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
