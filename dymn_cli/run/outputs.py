"""A run's outputs: which writer, every target checked before any work, what an earlier output holds
(`--resume`), and every output finished, also after an interruption."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from dymn_cli.audio.uris import is_uri
from dymn_cli.errors import OutputClosed, OutputError, UsageError
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.run.inputs import Input
from dymn_cli.run.shards import Shard, part_stem
from dymn_cli.writers.base import OutputOptions, Writer
from dymn_cli.writers.parts import part_writer
from dymn_cli.writers.previous import PreviousRecords
from dymn_cli.writers.registry import writer_class
from dymn_cli.writers.targets import Target, check_targets, resolve_target

__all__ = [
    "ResultSink",
    "check_outputs",
    "check_previous_model",
    "choose_writer",
    "finish_outputs",
    "more_output_writers",
    "read_previous",
]


class ResultSink(Protocol):
    """Anything that consumes outcomes as they come: output writers, embedding and event exports."""

    def write(self, outcome: TagResult | TagFailure) -> None: ...

    def close(self) -> None: ...


def choose_writer(
    format: str | None,
    output: Path | None,
    *,
    parts_dir: Path | None,
    part_size: int,
    shard: Shard | None,
    resume: bool,
    stdout_is_terminal: bool,
) -> tuple[Any, Path | None]:
    """The writer class of the run's main output, and that output: a file or stream (`output`), or a
    folder of part files (`parts_dir`)."""
    if parts_dir is None:
        return writer_class(format, output, stdout_is_terminal=stdout_is_terminal), output
    if output is not None:
        raise UsageError("write either a file (-o) or part files in a folder (--output-dir), not both")
    return part_writer(format, parts_dir, part_size=part_size, stem=part_stem(shard), resume=resume), parts_dir


def more_output_writers(
    paths: Sequence[Path], *, options: OutputOptions, inputs: list[Input], resume: bool
) -> list[tuple[Path, type[Writer]]]:
    """The writer of each further output file (format from its extension), checked before the model loads;
    `check_outputs` then checks them as files like every other output."""
    if not paths:
        return []
    kinds = []
    for path in paths:
        kind = writer_class(None, path, stdout_is_terminal=False)
        kind.validate(options=options, target=path, inputs=inputs)
        kinds.append((path, kind))
    return kinds


def check_outputs(
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
        if resume and option.startswith("-o #") and not other.is_file:
            raise UsageError(f"{other.path}: --resume needs a file to continue, not a stream (pipe, terminal or device)")
        if no_overwrite and option != "-o" and other.is_file and other.exists and not (resume and option.startswith("-o #")):
            raise UsageError(f"{other.path}: already exists (--no-overwrite)")
    return target


def read_previous(
    writer_type: type[Writer], output: Path | None, options: OutputOptions, settings: dict[str, Any], model: str | None
) -> PreviousRecords:
    """What the earlier output holds, once it is known to have been written by this kind of run
    (read in bounded memory: see `dymn_cli.writers.previous`)."""
    if output is None:
        raise UsageError("--resume needs an output file (-o)")
    if not writer_type.resumable:
        raise UsageError(f"--resume does not work with the {writer_type.name} format")
    if not output.exists():
        return PreviousRecords()
    try:
        writer_type.check_resumable(output, options=options, settings=settings, model=model)
        return PreviousRecords.read(writer_type, output, payloads=writer_type.carries_over())
    except (OSError, ValueError, KeyError, TypeError, StopIteration, UnicodeDecodeError, RecursionError) as error:
        raise UsageError(f"{output}: cannot resume from this file: {error}") from None


def check_previous_model(
    writer_type: type[Writer], output: Path | None, options: OutputOptions, settings: dict[str, Any], model: str
) -> None:
    """The earlier output was written by `model` (checked once the model is known, when no name was given before)."""
    assert output is not None
    try:
        writer_type.check_resumable(output, options=options, settings=settings, model=model)
    except (OSError, ValueError, KeyError, RecursionError) as error:
        raise UsageError(f"{output}: cannot resume from this file: {error}") from None


def finish_outputs(
    sinks: Sequence[ResultSink],
    unreached: Sequence[tuple[Any, deque[Input], PreviousRecords]],
    close_previous: Any,
    error: OutputError | None,
) -> tuple[OutputError | None, bool]:
    """Close every output, also after an interruption: the records each earlier output held that this
    run has not reached yet (`unreached`: each output's writer, those inputs and its records) are
    carried over too (an interrupted `--resume` keeps all of them). An output that failed keeps what
    it held before; the others are finished. Returns the first write error, and whether a stream's
    reader went away meanwhile."""
    closed = False
    try:
        for writer, carried, previous in unreached:
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
    close_previous()
    return error, closed
