"""A labelling run: inputs -> tagger -> writers, with per-input isolation, resume and clean stops.

This is the library function behind `dymn-tag INPUTS...`; the CLI only parses options into it.
`label_inputs` reads as the run's steps, one function each: collect the inputs, select the shard,
check the targets, read what is done, decode, load the tagger and open the outputs, tag and write,
summarise. The steps live in the modules of their concern: `inputs`, `shards`, `outputs`,
`decoding`, `input_order`, `summary` and `stop_signals`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dymn_cli.errors import Interrupted, OutputClosed, OutputError, SignalReceived
from dymn_cli.inference.pipeline import PipelineStats
from dymn_cli.inference.worker_pool import Decoding
from dymn_cli.models.frontend_config import FrontEndConfig
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.run.decoding import decode_first, read_source, worker_count
from dymn_cli.run.input_order import InputOrder
from dymn_cli.run.inputs import Input, collect_inputs, missing_paths
from dymn_cli.run.outputs import (
    ResultSink,
    check_outputs,
    check_previous_model,
    choose_writer,
    finish_outputs,
    more_output_writers,
    read_previous,
)
from dymn_cli.run.shards import DEFAULT_PART_SIZE, Shard, select_shard
from dymn_cli.run.stop_signals import signals_as_exceptions
from dymn_cli.run.summary import RunSummary
from dymn_cli.tagging import AudioTagger
from dymn_cli.writers.base import OutputOptions, Writer
from dymn_cli.writers.previous import PreviousRecords
from dymn_cli.writers.targets import Target

__all__ = ["RunSettings", "RunSummary", "TaggerOrFactory", "label_inputs"]

TaggerOrFactory = AudioTagger | Callable[[], AudioTagger]
"""A tagger, or what builds one (a tagger class, a function): built only once the inputs and the
options have been checked, since building it imports torch and loads the model."""


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
    writer_type, output = choose_writer(
        format,
        output,
        parts_dir=parts_dir,
        part_size=part_size,
        shard=shard,
        resume=resume,
        stdout_is_terminal=stdout_is_terminal,
    )
    inputs = collect_inputs(paths, files_from=files_from, recursive=settings.recursive, problems=summary.problems)
    missing = missing_paths(inputs)
    if shard is not None:
        inputs = select_shard(inputs, shard)
    targets = _check_targets(
        writer_type, output, inputs, options, extra_sinks, more_outputs=more_outputs, resume=resume, no_overwrite=no_overwrite
    )
    run_settings = {"window": settings.window, "hop": settings.hop, "aggregate": settings.aggregate, **options.settings()}
    plan = _read_done(targets, inputs, missing, options, run_settings, model_name=model_name, resume=resume)
    summary.skipped = len(plan.inputs) - len(plan.todo) - len(plan.missing)
    workers = worker_count(settings.workers, plan.todo, decode_first=settings.decode_first)
    early = _decode_early(plan.todo, settings, workers)
    tagger, outputs, early = _load_and_open(
        tagger, plan, targets, summary, early, options, extra_sinks, model_name=model_name, resume=resume, on_start=on_start
    )
    write_error = _tag_and_write(tagger, plan, outputs, summary, settings, workers=workers, decoding=early, on_outcome=on_outcome)
    summary.elapsed = time.monotonic() - started
    if write_error is not None:
        raise write_error
    return summary


@dataclass
class _Plan:
    """What the run does, settled before the model loads."""

    inputs: list[Input]  # every input of the run (of its shard), in order
    todo: list[Input]  # the inputs to tag
    missing: set[str]  # inputs that do not exist: each is one failed input, recorded without the tagger
    previous: PreviousRecords  # what the earlier main output holds (--resume)
    run_settings: dict[str, Any]  # the settings that shape the scores, for the outputs' header
    more_previous: list[PreviousRecords]  # what each further output file held (--resume), in -o order

    def done(self, path: str) -> bool:
        """Whether every output holds a record of `path` already (it is not tagged again)."""
        return path in self.previous and all(path in more for more in self.more_previous)

    def close(self) -> None:
        for previous in (self.previous, *self.more_previous):
            previous.close()


@dataclass
class _Targets:
    """The run's outputs, checked before any work."""

    writer_type: Any  # the main output's writer class (or the part files' writer)
    output: Path | None  # the main output as named (a folder of part files; None: standard output)
    target: Target | None  # where it goes (None: a folder of part or per-input files)
    more_types: list[tuple[Path, type[Writer]]]  # each further output file and its writer class


@dataclass
class _Outputs:
    writer: Any  # the main output's writer (or a folder of part files)
    sinks: list[ResultSink]  # every output, the main one first
    files: list[tuple[Any, PreviousRecords]]  # each output --resume continues, and what it held before


def _check_targets(
    writer_type: Any,
    output: Path | None,
    inputs: list[Input],
    options: OutputOptions,
    extra_sinks: Sequence[ResultSink],
    *,
    more_outputs: Sequence[Path],
    resume: bool,
    no_overwrite: bool,
) -> _Targets:
    """Check the formats, the options they take and every output target, before any work."""
    writer_type.validate(options=options, target=output, inputs=inputs)
    more_types = more_output_writers(more_outputs, options=options, inputs=inputs, resume=resume)
    target = check_outputs(
        writer_type, output, extra_sinks, inputs, resume=resume, no_overwrite=no_overwrite, more_outputs=more_outputs
    )
    return _Targets(writer_type=writer_type, output=output, target=target, more_types=more_types)


def _read_done(
    targets: _Targets,
    inputs: list[Input],
    missing: set[str],
    options: OutputOptions,
    run_settings: dict[str, Any],
    *,
    model_name: str | None,
    resume: bool,
) -> _Plan:
    """What an earlier output already holds (`--resume`), and so what is left to tag."""
    previous = (
        read_previous(targets.writer_type, targets.output, options, run_settings, model_name) if resume else PreviousRecords()
    )
    more = [read_previous(kind, path, options, run_settings, model_name) for path, kind in targets.more_types if resume]
    plan = _Plan(inputs=inputs, todo=[], missing=missing, previous=previous, run_settings=run_settings, more_previous=more)
    plan.missing = {path for path in missing if not plan.done(path)}
    plan.todo = [i for i in inputs if not plan.done(i.path) and i.path not in plan.missing]
    return plan


def _decode_early(todo: list[Input], settings: RunSettings, workers: int) -> Decoding | None:
    """The decode workers started before the model loads, when the settings ask for it."""
    if not settings.decode_first:
        return None
    return decode_first(
        todo,
        window=settings.window,
        hop=settings.hop,
        workers=workers,
        batch_size=settings.batch_size,
        timeout=settings.file_timeout,
    )


def _load_and_open(
    tagger: TaggerOrFactory,
    plan: _Plan,
    targets: _Targets,
    summary: RunSummary,
    early: Decoding | None,
    options: OutputOptions,
    extra_sinks: Sequence[ResultSink],
    *,
    model_name: str | None,
    resume: bool,
    on_start: Callable[[list[Input]], None] | None,
) -> tuple[AudioTagger, _Outputs, Decoding | None]:
    """Load the tagger (a factory imports torch only now) and open every output under the model's
    header; if anything fails, the early decoders and the earlier output's reader are closed."""
    try:
        tagger = _load_tagger(tagger, summary)
        if early is not None and not tagger.takes_decoding:  # (e.g. a RayTagger decodes on its cluster)
            early.close()
            early = None
        if resume and model_name is None:  # (the model is known only now)
            for kind, path, previous in _file_outputs(targets, plan):
                if previous:
                    check_previous_model(kind, path, options, plan.run_settings, tagger.model_label)
        header = _header(tagger, plan.run_settings)
        target = targets.target
        append = resume and target is not None and target.exists
        writer = targets.writer_type(
            target if target is not None else targets.output, options=options, header=header, append=append
        )
        more_writers = [
            kind(path, options=options, header=header, append=resume and path.exists()) for path, kind in targets.more_types
        ]
        if on_start is not None:
            on_start(plan.todo)
    except BaseException:
        if early is not None:
            early.close()
        plan.close()
        raise
    files = list(zip([writer, *more_writers], [plan.previous, *plan.more_previous]))
    return tagger, _Outputs(writer=writer, sinks=[writer, *more_writers, *extra_sinks], files=files), early


def _file_outputs(targets: _Targets, plan: _Plan) -> list[tuple[Any, Path | None, PreviousRecords]]:
    """Each output that --resume continues: its writer class, path and earlier records, the main one first."""
    more = [(kind, path, previous) for (path, kind), previous in zip(targets.more_types, plan.more_previous)]
    return [(targets.writer_type, targets.output, plan.previous), *more]


def _load_tagger(tagger: TaggerOrFactory, summary: RunSummary) -> AudioTagger:
    """The tagger itself: built now if a factory was given (its load time goes in the summary)."""
    if isinstance(tagger, AudioTagger):
        return tagger
    loading = time.monotonic()
    built = tagger()
    summary.load_seconds = time.monotonic() - loading
    if not isinstance(built, AudioTagger):
        raise TypeError(f"the tagger factory made a {type(built).__name__}, not an AudioTagger")
    return built


def _header(tagger: AudioTagger, run_settings: dict[str, Any]) -> dict[str, Any]:
    """The model and settings every output records."""
    header: dict[str, Any] = {"model": tagger.model_label, "settings": {**run_settings, "sample_rate": tagger.sample_rate}}
    head = getattr(tagger, "head", None)
    if head is not None:  # (its classes are in the settings; here where they come from)
        header["head"] = {"path": head.path, "classes": list(head.classes), "backbone": head.backbone.as_dict()}
    return header


def _tag_and_write(
    tagger: AudioTagger,
    plan: _Plan,
    outputs: _Outputs,
    summary: RunSummary,
    settings: RunSettings,
    *,
    workers: int,
    decoding: Decoding | None,
    on_outcome: Callable[[TagResult | TagFailure], None] | None,
) -> OutputError | None:
    """Tag what is left and write every outcome as it comes, in input order; a signal, a closed stream
    or a write error stops the run, and every output is finished either way. Returns the write error."""
    order = InputOrder(plan, outputs, summary, on_outcome)
    outcomes: Any = iter(())
    write_error: OutputError | None = None
    with signals_as_exceptions() as stop:
        try:
            outcomes = tagger.tag_many(
                (read_source(i) for i in plan.todo),
                window=settings.window,
                hop=settings.hop,
                aggregate=settings.aggregate,
                workers=workers,
                stats=summary.pipeline,
                decoding=decoding,
                timeout=settings.file_timeout,
            )
            for item, outcome in zip(plan.todo, outcomes):
                order.tagged(item, outcome)
                if stop.received is not None:  # (in case something on the way swallowed the first raise)
                    raise SignalReceived(stop.received)
            order.settle_the_rest()
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
            if decoding is not None:
                decoding.close()  # (if the pipeline never started, it still holds them)
            write_error, closed = finish_outputs(outputs.sinks, order.unreached_records(), plan.close, write_error)
            summary.output_closed = summary.output_closed or closed
        if summary.interrupted is None and stop.received is not None:
            summary.interrupted = Interrupted(stop.received)
    return write_error
