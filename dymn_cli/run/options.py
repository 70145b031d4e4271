"""What `dymn-tag` options for timelines, events, label selection, embeddings and pictures turn into.

Each function maps command-line values onto the Python API (`OutputOptions`, result sinks for
`label_inputs(extra_sinks=...)`) and checks the combinations that cannot work before any model loads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dymn_cli.errors import UsageError
from dymn_cli.events import DEFAULT_THRESHOLD, EventSettings
from dymn_cli.run.runner import ResultSink
from dymn_cli.writers.base import OutputOptions
from dymn_cli.writers.registry import WRITERS

__all__ = ["build_output_options", "build_sinks", "per_input_format", "writer_target"]


def per_input_format(format: str | None) -> bool:
    """Whether `--format` names a one-file-per-input export (audacity, raven)."""
    return format is not None and format in WRITERS and WRITERS[format].per_input


def build_output_options(
    *,
    format: str | None,
    top: int | None,
    threshold: float | None,
    timeline: bool = False,
    events: bool = False,
    min_duration: float = 0.0,
    labels: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> OutputOptions:
    """`OutputOptions` from the options; events are cut at `--threshold` (0.5 when not given)."""
    from dymn_cli.audioset.ontology import select_classes

    if min_duration < 0:
        raise UsageError(f"--min-duration must be at least 0, got {min_duration}")
    wants_events = events or per_input_format(format)
    settings = EventSettings(
        threshold=threshold if threshold is not None else DEFAULT_THRESHOLD, min_duration=min_duration
    ) if wants_events else None
    return OutputOptions(
        top=top,
        threshold=threshold,
        timeline=timeline,
        classes=select_classes(labels=labels, exclude=exclude),
        events=settings,
    )


def writer_target(*, format: str | None, output: Path | None, output_dir: Path | None) -> Path | None:
    """The `output` for `label_inputs`: the file of `-o`, or the folder of `--output-dir` for the
    per-input formats (None there: beside each input)."""
    if per_input_format(format):
        if output is not None:
            raise UsageError(f"--format {format} writes one file per input: give a folder with --output-dir, not -o")
        return output_dir
    if output_dir is not None:
        raise UsageError("--output-dir is for the per-input formats (--format audacity or raven); use -o for a file")
    return output


def build_sinks(
    *,
    options: OutputOptions,
    paths: Sequence[str],
    files_from: str | None = None,
    embeddings: Path | None = None,
    plot: Path | None = None,
    resume: bool = False,
) -> list[ResultSink]:
    """The extra result sinks: the embeddings archive and the pictures."""
    sinks: list[ResultSink] = []
    if embeddings is not None:
        from dymn_cli.writers.embeddings import EmbeddingWriter

        if resume:
            raise UsageError("--embeddings cannot be combined with --resume: the inputs it skips would be missing")
        if embeddings.is_dir():
            raise UsageError(f"{embeddings}: --embeddings takes a file name (.npz), not a folder")
        sinks.append(EmbeddingWriter(embeddings, windows=options.timeline))
    if plot is not None:
        from dymn_cli.writers.plot import PlotWriter

        single = plot.suffix.lower() == ".png" and not plot.is_dir()
        if single and (len(paths) != 1 or files_from is not None or os.path.isdir(paths[0])):
            raise UsageError(f"--plot {plot} draws one input; give --plot a folder to draw several")
        sinks.append(PlotWriter(plot, options=options, single=single))
    return sinks
