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

from dymn_cli.audio.uris import is_uri
from dymn_cli.errors import Interrupted, OutputClosed, OutputError, SignalReceived, UsageError
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
from dymn_cli.writers.previous import PreviousRecords
from dymn_cli.writers.registry import writer_class
from dymn_cli.writers.targets import Target, check_targets, resolve_target

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
    output_closed: bool = False  # the reader of a stream output went away: the run stopped there
    load_seconds: float = 0.0  # loading the model (0: a tagger was passed in ready)
    pipeline: PipelineStats = field(default_factory=PipelineStats)

    @property
    def exit_code(self) -> int:
        if self.output_closed:
            return OutputClosed.exit_code
        if self.interrupted is not None:
            return self.interrupted.exit_code
        if self.problems:
            return UsageError.exit_code
        return 1 if self.failures else 0

    def line(self, width: int = 90) -> str:
        """One line of at most `width` characters (100 columns with the `dymn-tag: ` before it): counts,
        audio and wall time as h:mm:ss, and where the time went for as much as fits."""
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        stopped = f", {self.interrupted}" if self.interrupted else ""
        base = (
            f"{self.tagged} tagged, {self.failed} failed{skipped}, {clock(self.audio_seconds)} of audio in {clock(self.elapsed)}"
        )
        candidates = [f"{base} ({detail}){stopped}" for detail in self.timings()] + [f"{base}{stopped}"]
        return next((line for line in candidates if len(line) <= width), candidates[-1])

    def timings(self) -> list[str]:
        """Where the time went, longest first, when the run tagged anything on this machine: loading
        the model, the network, and waiting for decoded audio (if that limited the speed)."""
        stats = self.pipeline
        if not stats.windows or self.elapsed <= 0:
            return []
        speed = f"{self.audio_seconds / self.elapsed:.0f}x realtime"
        load = f"load {self.load_seconds:.1f} s, " if self.load_seconds else ""
        network, waiting = f"network {stats.inference:.1f} s", f"waiting for audio {stats.decoding:.1f} s"
        bottleneck = waiting if stats.decoding > stats.inference else network
        return [f"{speed}; {load}{network}, {waiting}", f"{speed}; {load}{bottleneck}", speed]


def clock(seconds: float) -> str:
    """h:mm:ss, rounded to the second."""
    total = max(0, round(seconds))
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"


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


def collect_inputs(paths: Sequence[str], *, files_from: str | None, recursive: bool, problems: list[InputProblem]) -> list[Input]:
    """Inputs named on the command line and in a file list, each once, in the order given."""
    if files_from == STDIN and STDIN in paths:
        raise UsageError("standard input cannot carry both audio (-) and a file list (--files-from -)")
    named = list(paths)
    # A path that does not exist is an input that fails ("no such file or folder"), whichever way it
    # was named: counted as failed, recorded as such, exit 1 (unless no input exists at all).
    # A folder without audio is a problem (exit 2), reported before the model loads when nothing else is left.
    inputs = list(expand_inputs(named, recursive=recursive, problems=None, empty_folders=problems))
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
    more_outputs: Sequence[Path] = (),
    stats: PipelineStats | None = None,
    model_name: str | None = None,
    no_overwrite: bool = False,
) -> RunSummary:
    """Tag every input and write the outcomes; a bad input is reported and the others go on.

    With `resume`, inputs already recorded in `output` are carried over instead of tagged again, and
    the final output equals that of an uninterrupted run. `tagger` may be a factory: it is called only
    once the inputs and options have been checked, so that a usage error never waits for a model.
    `parts_dir` writes part files of `part_size` inputs into a folder instead of `output`, and `shard`
    tags only that shard of the inputs (see `dymn_cli.run.shards`). `more_outputs` are further files
    written by the same run, each in the format of its extension. `stats` (the summary's `pipeline`)
    may be given to watch the windows go through the network while the run goes.

    Every output is checked before any work (`dymn_cli.writers.targets.check_targets`): `model_name`, the
    name the factory's model will have, lets `--resume` check the earlier output's model before it
    loads too. Without `resume` an existing output is replaced (`no_overwrite`: refused instead). A
    write error stops the run with `OutputError` (the earlier output stays); a stream output whose
    reader went away stops it at once (`summary.output_closed`).
    """
    started = time.monotonic()
    summary = RunSummary(pipeline=stats if stats is not None else PipelineStats())
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
    missing = _missing_paths(inputs)
    if shard is not None:
        inputs = select_shard(inputs, shard)
    writer_type.validate(options=options, target=output, inputs=inputs)
    more_types = _more_outputs(more_outputs, options=options, inputs=inputs, resume=resume)
    target = _check_outputs(
        writer_type, output, extra_sinks, inputs, resume=resume, no_overwrite=no_overwrite, more_outputs=more_outputs
    )
    run_settings = {"window": settings.window, "hop": settings.hop, "aggregate": settings.aggregate, **options.settings()}
    previous = _previous_records(writer_type, output, options, run_settings, model_name) if resume else PreviousRecords()
    missing -= {path for path in missing if path in previous}
    todo = [i for i in inputs if i.path not in previous and i.path not in missing]
    summary.skipped = len(inputs) - len(todo) - len(missing)
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
        if resume and previous and model_name is None:  # (the model is known only now)
            _check_previous_model(writer_type, output, options, run_settings, tagger.name)
        header = {
            "model": tagger.name,
            "settings": {**run_settings, "sample_rate": tagger.sample_rate},
        }
        head = getattr(tagger, "head", None)
        if head is not None:  # (its classes are in the settings; here where they come from)
            header["head"] = {"path": head.path, "classes": list(head.classes), "backbone": head.backbone.as_dict()}
        append = resume and target is not None and target.exists
        writer = writer_type(target if target is not None else output, options=options, header=header, append=append)
        more_writers = [kind(path, options=options, header=header) for path, kind in more_types]
        if on_start is not None:
            on_start(todo)
    except BaseException:
        if early is not None:
            early.close()
        previous.close()
        raise
    sinks: list[ResultSink] = [writer, *more_writers, *extra_sinks]
    # inputs whose record is known without the tagger, in input order: carried over from the earlier
    # output (--resume), or failed because they do not exist
    carried = deque(i for i in inputs if i.path in previous or i.path in missing)
    position = {i.path: n for n, i in enumerate(inputs)}

    def settle(done: Input) -> None:
        if done.path in missing:
            failure = TagFailure(done.path, "file not found")  # (the decoder's words for a file gone later)
            _count(summary, failure)
            for sink in sinks:
                sink.write(failure)
            if on_outcome is not None:
                on_outcome(failure)
        else:
            writer.write_existing(done.path, previous[done.path])

    outcomes: Any = iter(())
    write_error: OutputError | None = None
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
                # Keep the input order: records carried over (or missing inputs) that come first.
                while carried and position[carried[0].path] < position[item.path]:
                    settle(carried.popleft())
                outcome.source = item.path
                _count(summary, outcome)
                for sink in sinks:
                    sink.write(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
                if stop.received is not None:  # (in case something on the way swallowed the first raise)
                    raise SignalReceived(stop.received)
            while carried:
                settle(carried.popleft())
        except SignalReceived as stopped:
            summary.interrupted = Interrupted(stopped.signum)
        except KeyboardInterrupt:
            summary.interrupted = Interrupted(signal.SIGINT)
        except OutputClosed:
            summary.output_closed = True
        except OutputError as error:
            write_error = error
        finally:
            stop.disarm()  # a signal from here on is only noted: the outputs are never left half-written
            getattr(outcomes, "close", lambda: None)()  # stops the decode workers now
            if early is not None:
                early.close()  # (if the pipeline never started, it still holds them)
            carried = deque(i for i in carried if i.path in previous)  # (not the missing inputs: not reached)
            write_error, closed = _finish_outputs(writer, sinks, carried, previous, write_error)
            summary.output_closed = summary.output_closed or closed
            summary.elapsed = time.monotonic() - started
        if summary.interrupted is None and stop.received is not None:
            summary.interrupted = Interrupted(stop.received)
    if write_error is not None:
        raise write_error
    return summary


def _more_outputs(
    paths: Sequence[Path], *, options: OutputOptions, inputs: list[Input], resume: bool
) -> list[tuple[Path, type[Writer]]]:
    """The writer of each further output file (format from its extension), checked before the model loads;
    `_check_outputs` then checks them as files like every other output."""
    if not paths:
        return []
    if resume:
        raise UsageError("--resume continues one output file: give a single -o")
    kinds = []
    for path in paths:
        kind = writer_class(None, path, stdout_is_terminal=False)
        kind.validate(options=options, target=path, inputs=inputs)
        kinds.append((path, kind))
    return kinds


def _finish_outputs(
    writer: Any, sinks: Sequence[ResultSink], carried: deque[Input], previous: PreviousRecords, error: OutputError | None
) -> tuple[OutputError | None, bool]:
    """Close every output, also after an interruption: the records an earlier output held that this
    run has not reached yet are carried over too (an interrupted `--resume` keeps all of them). An
    output that failed keeps what it held before; the others are finished. Returns the first write
    error, and whether a stream's reader went away meanwhile."""
    closed = False
    try:
        while carried and error is None:
            done = carried.popleft()
            writer.write_existing(done.path, previous[done.path])
    except OutputClosed:
        closed = True
    except OutputError as failed:
        error = failed
    for sink in sinks:
        try:
            sink.close()
        except OutputClosed:
            closed = True
        except OutputError as failed:
            error = error or failed
            getattr(sink, "discard", lambda: None)()
    previous.close()
    return error, closed


def _missing_paths(inputs: list[Input]) -> set[str]:
    """The inputs that do not exist: each is one failed input ("no such file or folder"), whichever way
    it was named (command line, folder walk, file list); a run where no input exists at all is a usage
    error, before the model loads."""
    missing = {i.path for i in inputs if not i.is_stdin and not is_uri(i.path) and not os.path.lexists(i.path)}
    if inputs and len(missing) == len(inputs):
        shown = [i.path for i in inputs[:5]]
        raise UsageError("; ".join(f"{path}: no such file or folder" for path in shown) + (" ..." if len(inputs) > 5 else ""))
    return missing


def _check_outputs(
    writer_type: Any,
    output: Path | None,
    sinks: Sequence[ResultSink],
    inputs: list[Input],
    *,
    resume: bool,
    no_overwrite: bool,
    more_outputs: Sequence[Path] = (),
) -> Target | None:
    """Check the run's file outputs before any work (see `dymn_cli.writers.targets.check_targets`) and the
    overwrite rule; returns the main output's `Target` (None: a folder of part or per-input files)."""
    folder = writer_type.per_input or hasattr(writer_type, "part_size")
    named: list[tuple[str, Path | None]] = [] if folder else [("-o", output)]
    named += [(f"-o #{n}", path) for n, path in enumerate(more_outputs, start=1 if folder else 2)]  # (several -o)
    named += [(getattr(s, "option", "an output"), getattr(s, "path", None)) for s in sinks]
    targets = check_targets(named, inputs=[i.path for i in inputs if not i.is_stdin and not is_uri(i.path)])
    if folder:
        return None
    target = targets.get("-o") or resolve_target(None)
    if resume and output is not None and not target.is_file:
        raise UsageError(f"{output}: --resume needs a file to continue, not a stream (pipe, terminal or device)")
    if no_overwrite and not resume and target.is_file and target.exists:
        raise UsageError(f"{output}: already exists (--no-overwrite): add --resume to continue it, or name another file")
    for option, other in targets.items():
        if no_overwrite and option != "-o" and other.is_file and other.exists:
            raise UsageError(f"{other.path}: already exists (--no-overwrite)")
    return target


def _previous_records(
    writer_type: type[Writer], output: Path | None, options: OutputOptions, settings: dict[str, Any], model: str | None
) -> PreviousRecords:
    """What the earlier output holds, once it is known to have been written by this kind of run
    (read in bounded memory: see `dymn_cli.previous`)."""
    if output is None:
        raise UsageError("--resume needs an output file (-o)")
    if not writer_type.resumable:
        raise UsageError(f"--resume does not work with the {writer_type.name} format")
    if not output.exists():
        return PreviousRecords()
    try:
        writer_type.check_resumable(output, options=options, settings=settings, model=model)
        return PreviousRecords.read(writer_type, output, payloads=writer_type.carries_over())
    except (OSError, ValueError, KeyError, TypeError, StopIteration, UnicodeDecodeError) as error:
        raise UsageError(f"{output}: cannot resume from this file: {error}") from error


def _check_previous_model(
    writer_type: type[Writer], output: Path | None, options: OutputOptions, settings: dict[str, Any], model: str
) -> None:
    assert output is not None
    try:
        writer_type.check_resumable(output, options=options, settings=settings, model=model)
    except (OSError, ValueError, KeyError) as error:
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
        grid=grid,
        batch_size=grid.batch_size(batch_hint),
        workers=workers,
        sample_rate=frontend.sample_rate,
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
