"""What `dymn-tag` options for timelines, events, label selection, embeddings and pictures turn into.

Each function maps command-line values onto the Python API (`OutputOptions`, result sinks for
`label_inputs(extra_sinks=...)`) and checks the combinations that cannot work before any model loads.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dymn_cli.audioset.thresholds import load_thresholds
from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.engine_tagger import LIVE_HOP, hop_for
from dymn_cli.errors import UsageError
from dymn_cli.events import DEFAULT_THRESHOLD, EventSettings
from dymn_cli.models.head import ClassifierHead, load_head
from dymn_cli.models.identity import Checkpoint
from dymn_cli.run.outputs import ResultSink
from dymn_cli.writers.base import OutputOptions
from dymn_cli.writers.registry import WRITERS

__all__ = [
    "HeadChoice",
    "build_output_options",
    "build_sinks",
    "choose_head",
    "per_input_format",
    "for_live",
    "window_and_hop",
    "writer_target",
]

log = logging.getLogger("dymn_cli")
DEFAULT_WINDOW = 10.0


@dataclass(frozen=True)
class HeadChoice:
    """A run's classes and windows once `--head` and `--with-audioset` are read (before any model loads)."""

    head: ClassifierHead | None
    vocabulary: Vocabulary
    window: float
    hop: float


def window_and_hop(window: float | None, hop: float | None, *, default_window: float, default_hop: float) -> tuple[float, float]:
    """The window and hop given, else the defaults, the hop never longer than the window unless given:
    `--window 5` alone hops by 5 s, not by the default 10 s, which would leave half the audio unheard.
    A hop given longer than its window is allowed (sampling a long recording), with a warning."""
    window_ = default_window if window is None else window
    if hop is not None and hop > window_ + 1e-9:
        log.warning(
            "warning: --hop %g s is longer than the %g s window: %g s of audio after each window is not tagged",
            hop,
            window_,
            hop - window_,
        )
    return window_, hop_for(window_, hop, default_hop=default_hop)


def for_live(chosen: HeadChoice, hop: float | None) -> HeadChoice:
    """A live run's windows: the hop given, else the head's (a --head, or a graph that holds one), else
    `LIVE_HOP`, a window a second: the file's default hop (10 s) would answer a stream every 10 s."""
    if hop is not None or chosen.head is not None or chosen.vocabulary != Vocabulary.audioset():
        return chosen
    return dataclasses.replace(chosen, hop=min(LIVE_HOP, chosen.window))


def choose_head(
    head: str | os.PathLike[str] | None, *, with_audioset: bool = False, window: float | None = None, hop: float | None = None
) -> HeadChoice:
    """Load `--head` (torch-free, before the model), and pick the window and hop: those given, else the
    head's (those it was trained on), else 10 s. A window unlike the head's is allowed, with a warning."""
    if head is None:
        if with_audioset:
            raise UsageError("--with-audioset goes with --head: without a head the AudioSet classes are all there is")
        return HeadChoice(
            None, Vocabulary.audioset(), *window_and_hop(window, hop, default_window=DEFAULT_WINDOW, default_hop=DEFAULT_WINDOW)
        )
    loaded = load_head(head)
    if window is not None and abs(window - loaded.window) > 1e-9:
        log.warning(
            "%s was trained on %g s windows; tagging with %g s windows may score its classes worse", head, loaded.window, window
        )
    return HeadChoice(
        loaded,
        Vocabulary.with_head(loaded.classes, audioset=with_audioset),
        *window_and_hop(window, hop, default_window=loaded.window, default_hop=loaded.hop),
    )


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
    wide: bool = False,
    vocabulary: Vocabulary | None = None,
    thresholds: str | os.PathLike[str] | None = None,
) -> OutputOptions:
    """`OutputOptions` from the options; events are cut at `--threshold` (0.5 when not given). The
    `--thresholds` file is read here, matched against the run's classes, before any model loads."""
    from dymn_cli.audioset.ontology import select_classes

    if min_duration < 0:
        raise UsageError(f"--min-duration must be at least 0, got {min_duration}")
    per_class = load_thresholds(thresholds, vocabulary or Vocabulary.audioset()) if thresholds is not None else None
    wants_events = events or per_input_format(format)
    settings = (
        EventSettings(
            threshold=threshold if threshold is not None else DEFAULT_THRESHOLD, min_duration=min_duration, per_class=per_class
        )
        if wants_events
        else None
    )
    return OutputOptions(
        top=top,
        threshold=threshold,
        timeline=timeline,
        classes=select_classes(labels=labels, exclude=exclude, vocabulary=vocabulary),
        events=settings,
        wide=wide,
        vocabulary=vocabulary,
        thresholds=per_class,
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
    window: float | None = None,
    hop: float | None = None,
    network: Sequence[Checkpoint] | None = None,
) -> list[ResultSink]:
    """The extra result sinks: the embeddings archive (which records `window`, `hop` and the `network`)
    and the pictures."""
    sinks: list[ResultSink] = []
    if embeddings is not None:
        from dymn_cli.writers.embeddings import EmbeddingWriter

        if resume:
            raise UsageError("--embeddings cannot be combined with --resume: the inputs it skips would be missing")
        if embeddings.is_dir():
            raise UsageError(f"{embeddings}: --embeddings takes a file name (.npz), not a folder")
        sinks.append(EmbeddingWriter(embeddings, windows=options.timeline, window=window, hop=hop, network=network))
    if plot is not None:
        from dymn_cli.writers.plot import PlotWriter

        single = plot.suffix.lower() == ".png" and not plot.is_dir()
        if single and (len(paths) != 1 or files_from is not None or os.path.isdir(paths[0])):
            raise UsageError(f"--plot {plot} draws one input; give --plot a folder to draw several")
        if not single:
            from dymn_cli.writers.targets import check_folder

            check_folder(plot, option="--plot")
        sinks.append(PlotWriter(plot, options=options, single=single))
    return sinks
