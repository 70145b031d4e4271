"""`dymn-tag [PATHS]`: tag audio files, a thin layer over `dymn_cli.run.runner.label_inputs`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import typer

from dymn_cli.cli.choices import DEFAULT_MODEL, Aggregate, Precision, check_one_network
from dymn_cli.cli.help import CommandWithPanels
from dymn_cli.cli.options import general as general_options
from dymn_cli.cli.options import inputs as input_options
from dymn_cli.cli.options import labels as label_options
from dymn_cli.cli.options import model as model_options
from dymn_cli.cli.options import outputs as output_options
from dymn_cli.errors import OutputClosed, UsageError
from dymn_cli.run.shards import DEFAULT_PART_SIZE, parse_shard

log = logging.getLogger("dymn_cli")

# Each example: the command (short enough for an 80-column terminal) and what it does.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("dymn-tag song.wav --top 5", "the best 5 labels as a table"),
    ("dymn-tag recordings/ -o labels.csv", "a folder tree to CSV (also .json, .jsonl, .parquet)"),
    ("dymn-tag recordings/ -o labels.csv -o labels.jsonl", "two outputs from one run"),
    ("dymn-tag recordings/ --wide -o scores.parquet", "one row per file, one column per label"),
    ("find . -name '*.flac' | dymn-tag --files-from - > labels.jsonl", "paths from a pipe"),
    ("curl -s https://example.org/clip.mp3 | dymn-tag - -f json", "audio from a pipe"),
    ("dymn-tag walk.wav --hop 1 --events -t 0.4 -f audacity", "sound events as an Audacity label track"),
    ("dymn-tag park.wav --labels Animal --exclude Insect --timeline", "one branch of the ontology, window by window"),
    ("dymn-tag tag labels/", "tag a folder named like a command"),
    ("dymn-tag train sounds/ -o sounds.safetensors", "a head for your own classes (sounds/<class>/*.wav)"),
    ("dymn-tag pond.wav --head sounds.safetensors", "tag with its classes (--with-audioset: and AudioSet's)"),
    ("dymn-tag search query.wav --index library.npz", "the most similar clips (index: --embeddings)"),
)

tag_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def usage() -> str:
    """What `dymn-tag` with nothing to tag prints before its error: the forms of a command line."""
    from dymn_cli.cli.commands import command_names

    return (
        "Usage: dymn-tag [OPTIONS] PATHS...\n"
        f"       dymn-tag COMMAND [ARGS]...   ({', '.join(command_names())})\n"
        "Try 'dymn-tag -h' for help."
    )


@tag_app.command(cls=CommandWithPanels)
def tag(
    paths: input_options.Paths = None,
    files_from: input_options.FilesFrom = None,
    recursive: input_options.Recursive = True,
    file_timeout: input_options.FileTimeout = None,
    live: input_options.Live = False,
    pcm: input_options.Pcm = None,
    reconnect: input_options.Reconnect = 300.0,
    output: output_options.Output = None,
    format: output_options.Format = None,
    wide: output_options.Wide = False,
    output_dir: output_options.OutputDir = None,
    part_size: output_options.PartSize = DEFAULT_PART_SIZE,
    resume: output_options.Resume = False,
    no_overwrite: output_options.NoOverwrite = False,
    embeddings: output_options.Embeddings = None,
    plot: output_options.Plot = None,
    top: label_options.Top = "10",
    threshold: label_options.Threshold = None,
    thresholds: label_options.Thresholds = None,
    labels: label_options.Labels = None,
    exclude: label_options.Exclude = None,
    timeline: label_options.Timeline = False,
    events: label_options.Events = False,
    min_duration: label_options.MinDuration = 0.0,
    model: model_options.Model = DEFAULT_MODEL,
    weights: model_options.Weights = None,
    sha256: model_options.Sha256 = None,
    head: model_options.Head = None,
    with_audioset: model_options.WithAudioset = False,
    window: label_options.Window = None,
    hop: label_options.Hop = None,
    aggregate: label_options.Aggregate = Aggregate.mean,
    device: model_options.Device = "auto",
    precision: model_options.Precision = Precision.auto,
    batch_size: model_options.BatchSize = None,
    workers: model_options.Workers = None,
    compile: model_options.Compile = False,
    shard: general_options.Shard = None,
    ray_target: general_options.RayTarget = None,
    actors: general_options.Actors = None,
    quiet: general_options.Quiet = False,
    version: general_options.Version = False,
    show_completion: general_options.ShowCompletion = False,
    install_completion: general_options.InstallCompletion = False,
) -> None:
    """Tag audio with AudioSet labels using the published DyMN / MobileNetV3 models."""
    from dymn_cli.inference.allocator import keep_freed_memory
    from dymn_cli.run.taggers import TaggerChoice
    from dymn_cli.writers.targets import refuse_overwriting

    keep_freed_memory()
    if not paths and files_from is None:
        typer.echo(usage(), err=True)
        raise UsageError("no input: name files or folders, - for standard input, or --files-from")
    if pcm is not None and not live:
        raise UsageError("--pcm describes a live stream: use it with --live")
    if actors is not None and ray_target is None:
        raise UsageError("--actors goes with --ray")
    check_one_network(model, weights)
    written = [*(("-o", Path(f)) for f in output or ()), ("--embeddings", embeddings), ("--plot", plot)]
    refuse_overwriting(written, [*(weights or ()), head, files_from, thresholds])  # (the model is no output)
    choice = TaggerChoice(
        model=model,
        weights=tuple(str(w) for w in weights or ()),
        device=device,
        precision=precision.value,
        compile=compile,
        batch_size=batch_size,
        sha256=sha256,
        with_audioset=with_audioset,
        ray_address=ray_target,
        actors=actors,
    )
    selection = dict(top=top, threshold=threshold, thresholds=thresholds, labels=labels, exclude=exclude, events=events)
    selection.update(min_duration=min_duration)
    if live:
        refuse_with_live(
            files_from=files_from,
            resume=resume,
            timeline=timeline,
            output_dir=output_dir,
            shard=shard,
            ray=ray_target,
            embeddings=embeddings,
            plot=plot,
            file_timeout=file_timeout,
            wide=wide,
        )
        if output and len(output) > 1:
            raise UsageError("--live writes one output: give a single -o")
        from dymn_cli.run.options import for_live

        chosen, graph_tagger = choose_classes(choice, head=head, window=window, hop=hop)
        chosen = for_live(chosen, hop)
        format_name = format.value if format is not None else None
        _tag_live(
            paths or [],
            choice,
            output=output[0] if output else None,
            format=format_name,
            chosen=chosen,
            graph=graph_tagger,
            pcm=pcm,
            reconnect=reconnect,
            quiet=quiet,
            **selection,
        )
    format_name = format.value if format is not None else None
    if wide and format_name is None and not output:
        format_name = "csv"  # (the wide table on standard output: CSV, whether a terminal or a pipe)
    chosen, graph_tagger = choose_classes(choice, head=head, window=window, hop=hop)
    from dymn_cli.run.options import build_output_options
    from dymn_cli.run.runner import RunSettings

    options = build_output_options(
        format=format_name,
        timeline=timeline,
        wide=wide,
        vocabulary=chosen.vocabulary,
        **selection,  # type: ignore[arg-type]
    )
    settings = RunSettings(
        window=chosen.window,
        hop=chosen.hop,
        aggregate=aggregate.value,
        workers=workers,
        recursive=recursive,
        decode_first=ray_target is None,
        batch_size=batch_size,
        file_timeout=file_timeout,
    )
    summary = _tag_files(
        paths or [],
        choice,
        chosen=chosen,
        graph=graph_tagger,
        format_name=format_name,
        options=options,
        settings=settings,
        output=list(output or []),
        output_dir=output_dir,
        embeddings=embeddings,
        plot=plot,
        quiet=quiet,
        files_from=files_from,
        resume=resume,
        part_size=part_size,
        shard=parse_shard(shard) if shard is not None else None,
        no_overwrite=no_overwrite,
    )
    if summary.output_closed:  # the reader went away (`| head`): no word, the status of SIGPIPE
        raise OutputClosed("standard output closed")
    for problem in summary.problems:
        log.error("%s: %s", problem.path, problem.reason)
    if not quiet:
        log.info(summary.line())
    raise typer.Exit(summary.exit_code)


def refuse_with_live(**given: Any) -> None:
    """The options of files, not of streams, are a usage error with --live (`given`: option -> value)."""
    unused = ["--" + name.replace("_", "-") for name, value in given.items() if value]
    if unused:
        raise UsageError(f"{', '.join(unused)} cannot be used with --live")


def choose_classes(choice: Any, *, head: Path | None, window: float | None, hop: float | None) -> tuple[Any, Any]:
    """The run's classes, window and hop (`run.options.HeadChoice`), and the ONNX graph's tagger where
    --weights names one (opened now: it says which classes the run reports), else None."""
    from dymn_cli.run.graph import graph_weights, open_graph
    from dymn_cli.run.options import choose_head

    graph = graph_weights(choice.weights)
    if graph is None:
        return choose_head(head, with_audioset=choice.with_audioset, window=window, hop=hop), None
    engine = dict(device=choice.device, batch_size=choice.batch_size, sha256=choice.sha256, precision=choice.precision)
    return open_graph(
        graph,
        head=head,
        with_audioset=choice.with_audioset,
        window=window,
        hop=hop,
        ray=choice.ray_address is not None,
        compile=choice.compile,
        **engine,
    )


def _tag_files(
    inputs: list[str],
    choice: Any,
    *,
    chosen: Any,
    graph: Any,
    format_name: str | None,
    options: Any,
    settings: Any,
    output: list[Path],
    output_dir: Path | None,
    embeddings: Path | None,
    plot: Path | None,
    quiet: bool,
    **run: Any,
) -> Any:
    """Files, folders and pipes: a thin layer over `dymn_cli.run.runner.label_inputs` (`run`: its
    files_from, resume, part_size, shard and no_overwrite)."""
    from dymn_cli.cli.progress import RunProgress
    from dymn_cli.inference.pipeline import PipelineStats
    from dymn_cli.models.identity import identify, model_label
    from dymn_cli.run.options import build_sinks, per_input_format, writer_target
    from dymn_cli.run.runner import label_inputs
    from dymn_cli.run.taggers import build_tagger

    parts_dir = output_dir if output_dir is not None and not per_input_format(format_name) else None
    # Several -o: each in the format of its extension, beside the per-input files of audacity/raven.
    first_output, more_outputs = (None, output) if per_input_format(format_name) or not output else (output[0], output[1:])
    if more_outputs and format_name is not None and not per_input_format(format_name):
        raise UsageError("with several -o, each output's format comes from its extension: leave out --format")
    target = writer_target(format=format_name, output=first_output, output_dir=None if parts_dir is not None else output_dir)
    network = identify(None if choice.weights else choice.model, list(choice.weights) or None)  # (known before it loads)
    sinks = build_sinks(
        options=options,
        paths=inputs,
        files_from=run["files_from"],
        embeddings=embeddings,
        plot=plot,
        resume=run["resume"],
        window=chosen.window,
        hop=chosen.hop,
        network=network,
    )
    interactive = sys.stderr.isatty() and not quiet
    stats = PipelineStats()
    with RunProgress(enabled=interactive, stats=stats, hop=chosen.hop) as progress:

        def make_tagger() -> Any:  # (an ONNX graph's tagger was built with the options: it needs no torch)
            return graph or build_tagger(choice, head=chosen.head, progress=interactive, status=progress.status)

        return label_inputs(
            inputs,
            tagger=make_tagger,
            output=target,
            format=format_name,
            options=options,
            extra_sinks=sinks,
            settings=settings,
            stdout_is_terminal=sys.stdout is not None and sys.stdout.isatty(),
            on_start=progress.start,
            on_outcome=progress.advance,
            parts_dir=parts_dir,
            more_outputs=more_outputs,
            stats=stats,
            model_name=model_label(network),
            **run,
        )


def _tag_live(
    sources: list[str],
    choice: Any,
    *,
    output: Path | None,
    format: str | None,
    chosen: Any,
    graph: Any,
    pcm: str | None,
    reconnect: float,
    quiet: bool,
    **selection: Any,
) -> None:
    """`--live`: a thin layer over `dymn_cli.run.live.tag_live`."""
    from dymn_cli.audio.pcm import PcmFormat
    from dymn_cli.run.live import LiveSettings, tag_live
    from dymn_cli.run.options import build_output_options
    from dymn_cli.run.taggers import build_tagger

    options = build_output_options(format=None, vocabulary=chosen.vocabulary, **selection)
    settings = LiveSettings(
        window=chosen.window, hop=chosen.hop, pcm=PcmFormat.parse(pcm) if pcm is not None else None, reconnect=reconnect
    )

    def make_tagger() -> Any:  # (an ONNX graph's tagger was built with the options: it needs no torch)
        return graph or build_tagger(choice, head=chosen.head, progress=sys.stderr.isatty() and not quiet)

    summary = tag_live(sources, tagger=make_tagger, output=output, format=format, options=options, settings=settings)
    if summary.output_closed and summary.interrupted is None:  # as offline: no word, the status of SIGPIPE
        raise OutputClosed("standard output closed")
    if summary.interrupted is not None:
        log.error("%s", summary.interrupted)
    if not quiet:
        log.info(summary.line())
    raise typer.Exit(summary.exit_code)
