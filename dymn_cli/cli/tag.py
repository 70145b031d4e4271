"""`dymn-tag [PATHS]`: tag audio files, a thin layer over `dymn_cli.run.runner.label_inputs`."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dymn_cli.cli import metavars, panels
from dymn_cli.cli.choices import Aggregate, OutputFormat, Precision, check_device, check_pcm, parse_top, positive_seconds
from dymn_cli.cli.help import CommandWithPanels
from dymn_cli.errors import OutputClosed, UsageError
from dymn_cli.run.shards import DEFAULT_PART_SIZE, parse_shard
from dymn_cli.version import __version__

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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dymn-tag {__version__}")
        raise typer.Exit()


def _completion_option(option: str) -> Any:
    def callback(value: bool) -> None:
        if value:
            from dymn_cli.cli.completion import run_option

            run_option(option, [])
            raise typer.Exit()

    return callback


def usage() -> str:
    """What `dymn-tag` with nothing to tag prints before its error: the forms of a command line."""
    from dymn_cli.cli.commands import command_names

    return (
        "Usage: dymn-tag [OPTIONS] PATHS...\n"
        f"       dymn-tag COMMAND [ARGS]...   ({', '.join(command_names())})\n"
        "Try 'dymn-tag -h' for help."
    )


def _shard(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_shard(value)
        except UsageError as error:
            raise typer.BadParameter(str(error).removeprefix(f"--shard {value}: ")) from None
    return value


@tag_app.command(cls=CommandWithPanels)
def tag(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            metavar=metavars.PATHS,
            help="Audio files, folders (walked), or - for audio on stdin. A path named like a command: ./NAME, NAME/, or after tag or --.",
            show_default=False,
        ),
    ] = None,
    files_from: Annotated[
        str | None,
        typer.Option(
            "--files-from",
            "-T",
            metavar=metavars.FILE,
            help="Read input paths, one a line, from this file or - (stdin).",
            rich_help_panel=panels.INPUT,
        ),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive/--no-recursive", help="Walk folders recursively.", rich_help_panel=panels.INPUT)
    ] = True,
    file_timeout: Annotated[
        float | None,
        typer.Option(
            "--file-timeout",
            metavar=metavars.SECONDS,
            help="Fail an input that takes longer than this to decode and tag ('timed out after N s') and go on (default: no limit).",
            callback=positive_seconds,
            show_default=False,
            rich_help_panel=panels.INPUT,
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="The inputs are live streams (-, a FIFO or device, a URL such as http://, rtsp://, srt://, udp://), tagged as they arrive: a JSON line per window and per event, at once (default hop 1 s).",
            rich_help_panel=panels.INPUT,
        ),
    ] = False,
    pcm: Annotated[
        str | None,
        typer.Option(
            "--pcm",
            metavar=metavars.PCM,
            callback=check_pcm,
            help="With --live: the streams are headerless PCM, e.g. s16le:32000:1 (s16le, s24le, s32le, f32le, f64le, u8, s8; be for big-endian).",
            rich_help_panel=panels.INPUT,
        ),
    ] = None,
    reconnect: Annotated[
        float,
        typer.Option(
            "--reconnect",
            metavar=metavars.SECONDS,
            help="With --live: reopen a network stream that drops, for up to this long (0: never).",
            min=0.0,
            rich_help_panel=panels.INPUT,
        ),
    ] = 300.0,
    output: Annotated[
        list[Path] | None,
        typer.Option(
            "-o",
            "--output",
            metavar=metavars.FILE,
            help="Write results to this file, its format from its extension (.csv, .json, .jsonl, .parquet); repeat for several.",
            show_default=False,
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    format: Annotated[
        OutputFormat | None,
        typer.Option(
            "-f",
            "--format",
            case_sensitive=False,
            metavar=metavars.FORMAT,
            help="table, csv, json, jsonl, parquet (default: from -o, else table on a terminal, jsonl in a pipe); audacity, raven: a sound-event file per input.",
            show_default=False,
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide",
            help="One row per input, one column per label (csv, parquet; CSV on stdout): every score, or those of --labels.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            metavar=metavars.DIR,
            help="audacity, raven: the folder for the per-input files, mirroring the inputs' paths (default: beside each input). csv, json, jsonl, parquet: numbered part files of --part-size inputs.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    part_size: Annotated[
        int,
        typer.Option(
            "--part-size",
            metavar=metavars.N,
            help="Inputs per part file with --output-dir.",
            min=1,
            rich_help_panel=panels.OUTPUT,
        ),
    ] = DEFAULT_PART_SIZE,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Skip inputs already recorded in -o (written with the same model and settings) and add the rest.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
    no_overwrite: Annotated[
        bool,
        typer.Option(
            "--no-overwrite",
            "-n",
            help="Refuse to replace an existing output file (without --resume, a run replaces it).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
    embeddings: Annotated[
        Path | None,
        typer.Option(
            "--embeddings",
            metavar=metavars.FILE,
            help="Write clip embeddings (and window embeddings with --timeline) to this .npz file.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar=metavars.FILE_OR_DIR,
            help="Draw the top labels over time with the loudness: a .png file (one input) or a folder (needs matplotlib).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    top: Annotated[
        str,
        typer.Option(
            "--top",
            "-k",
            metavar=metavars.TOP,
            help="How many labels per input (with --events: the events of the K labels with the highest peak), or all. --live: the labels of each window record; events are not limited.",
            callback=parse_top,
            rich_help_panel=panels.LABELS,
        ),
    ] = "10",
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            "-t",
            metavar=metavars.SCORE,
            help="Keep only labels scoring at least this (0 to 1).",
            min=0.0,
            max=1.0,
            rich_help_panel=panels.LABELS,
        ),
    ] = None,
    thresholds: Annotated[
        Path | None,
        typer.Option(
            "--thresholds",
            metavar="FILE",
            help="Each class's own threshold: a CSV label,mid,threshold (evaluate --save-thresholds writes one); "
            "other classes keep --threshold.",
            rich_help_panel=panels.LABELS,
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            metavar=metavars.NAMES,
            help="Only these classes: names, ontology nodes (a whole subtree, e.g. Animal) or mids, comma-separated, or @FILE.",
            rich_help_panel=panels.LABELS,
        ),
    ] = None,
    exclude: Annotated[
        str | None,
        typer.Option(
            "--exclude",
            metavar=metavars.NAMES,
            help="Leave out these classes (same forms as --labels).",
            rich_help_panel=panels.LABELS,
        ),
    ] = None,
    timeline: Annotated[
        bool,
        typer.Option(
            "--timeline",
            help="Also report each window's labels (CSV: a row per window and label); honours --top and --threshold.",
            rich_help_panel=panels.LABELS,
        ),
    ] = False,
    events: Annotated[
        bool,
        typer.Option(
            "--events",
            help="Report sound events: when each label scores at least --threshold (default 0.5), on the hop grid.",
            rich_help_panel=panels.LABELS,
        ),
    ] = False,
    min_duration: Annotated[
        float,
        typer.Option(
            "--min-duration",
            metavar=metavars.SECONDS,
            help="Drop sound events shorter than this.",
            min=0.0,
            rich_help_panel=panels.LABELS,
        ),
    ] = 0.0,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            metavar=metavars.MODEL,
            help="Published model (see dymn-tag models), or several joined by commas for an ensemble.",
            rich_help_panel=panels.MODEL,
        ),
    ] = "dymn10_as",
    weights: Annotated[
        list[Path] | None,
        typer.Option(
            "--weights",
            "-w",
            metavar=metavars.FILE,
            help="Local checkpoint file instead of --model (repeat for an ensemble), or one graph from dymn-tag export (.onnx: runs in onnxruntime, without torch); needs no network.",
            show_default=False,
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option("--sha256", metavar=metavars.HEX, help="Expected SHA-256 of the checkpoint.", rich_help_panel=panels.MODEL),
    ] = None,
    head: Annotated[
        Path | None,
        typer.Option(
            "--head",
            metavar=metavars.FILE,
            help="Score the classes of this head (from dymn-tag train) instead of AudioSet's.",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    with_audioset: Annotated[
        bool,
        typer.Option(
            "--with-audioset", help="With --head: the AudioSet classes too, before the head's.", rich_help_panel=panels.MODEL
        ),
    ] = False,
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            metavar=metavars.SECONDS,
            help="Window length (default: 10, or the --head's, or the .onnx graph's).",
            callback=positive_seconds,
            show_default=False,
            rich_help_panel=panels.WINDOWS,
        ),
    ] = None,
    hop: Annotated[
        float | None,
        typer.Option(
            "--hop",
            metavar=metavars.SECONDS,
            help="Time between window starts (default: 10, or the --head's, or the .onnx graph's).",
            callback=positive_seconds,
            show_default=False,
            rich_help_panel=panels.WINDOWS,
        ),
    ] = None,
    aggregate: Annotated[
        Aggregate,
        typer.Option(
            "--aggregate", case_sensitive=False, help="Clip score from the window scores.", rich_help_panel=panels.WINDOWS
        ),
    ] = Aggregate.mean,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            "-d",
            metavar=metavars.DEVICE,
            help="Where the network runs (auto: CUDA when there is one).",
            callback=check_device,
            rich_help_panel=panels.COMPUTE,
        ),
    ] = "auto",
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision",
            case_sensitive=False,
            metavar=metavars.PRECISION,
            help="auto (float16 on CUDA, float32 on the CPU), float32, float16 or bfloat16.",
            rich_help_panel=panels.COMPUTE,
        ),
    ] = Precision.auto,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            "-b",
            metavar=metavars.N,
            help="Windows per network call (default: 8 per CPU lane, i.e. per torch thread; 16 on CUDA).",
            min=1,
            show_default=False,
            rich_help_panel=panels.COMPUTE,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            metavar=metavars.N,
            help="Decoding processes (default: from the CPU count; 0: decode in this process).",
            min=0,
            rich_help_panel=panels.COMPUTE,
        ),
    ] = None,
    compile: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="Compile the network with torch.compile (minutes of compiling first, again at each new batch size; on the CPU no faster).",
            rich_help_panel=panels.COMPUTE,
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar=metavars.SHARD,
            help="Tag only shard I of N (I counts from 0): a stable split of the inputs for job arrays; join the outputs with dymn-tag merge.",
            callback=_shard,
            rich_help_panel=panels.SCALE_OUT,
        ),
    ] = None,
    ray_target: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar=metavars.RAY,
            help="Run on Ray: local (an instance for this run), auto (the cluster this machine is in) or a cluster address. Needs pip install 'dymn-cli\\[ray]'.",
            rich_help_panel=panels.SCALE_OUT,
        ),
    ] = None,
    actors: Annotated[
        int | None,
        typer.Option(
            "--actors",
            metavar=metavars.N,
            help="With --ray: inference actors, each loading the model once (default: one per GPU, else 1).",
            min=1,
            rich_help_panel=panels.SCALE_OUT,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress display, no summary.", rich_help_panel=panels.GENERAL)
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit.", rich_help_panel=panels.GENERAL
        ),
    ] = False,
    show_completion: Annotated[
        bool,
        typer.Option(
            "--show-completion",
            callback=_completion_option("--show-completion"),
            is_eager=True,
            help="Print the shell completion script: bash, zsh or fish (the login shell's, or name one: dymn-tag --show-completion zsh).",
            rich_help_panel=panels.GENERAL,
        ),
    ] = False,
    install_completion: Annotated[
        bool,
        typer.Option(
            "--install-completion",
            callback=_completion_option("--install-completion"),
            is_eager=True,
            help="Install shell completion (the login shell's, or name one: dymn-tag --install-completion fish).",
            rich_help_panel=panels.GENERAL,
        ),
    ] = False,
) -> None:
    """Tag audio with AudioSet labels using the published DyMN / MobileNetV3 models."""
    from dymn_cli.cli.progress import RunProgress
    from dymn_cli.inference.allocator import keep_freed_memory
    from dymn_cli.inference.pipeline import PipelineStats
    from dymn_cli.models.identity import identify, model_label
    from dymn_cli.run.options import build_output_options, build_sinks, choose_head, per_input_format, writer_target
    from dymn_cli.run.runner import RunSettings, label_inputs

    keep_freed_memory()

    def choose(hop: float | None) -> tuple[Any, Any]:
        """The run's classes, window and hop, and the ONNX graph's tagger where --weights names one."""
        from dymn_cli.run.graph import graph_weights, open_graph

        graph = graph_weights(weights)
        if graph is None:
            return choose_head(head, with_audioset=with_audioset, window=window, hop=hop), None
        engine = dict(device=device, batch_size=batch_size, sha256=sha256, precision=precision.value, compile=compile)
        return open_graph(
            graph, head=head, with_audioset=with_audioset, window=window, hop=hop, ray=ray_target is not None, **engine
        )

    if not paths and files_from is None:
        typer.echo(usage(), err=True)
        raise UsageError("no input: name files or folders, - for standard input, or --files-from")
    if pcm is not None and not live:
        raise UsageError("--pcm describes a live stream: use it with --live")
    if live:
        given = {
            "--files-from": files_from,
            "--resume": resume,
            "--timeline": timeline,
            "--output-dir": output_dir,
            "--shard": shard,
            "--ray": ray_target,
            "--embeddings": embeddings,
            "--plot": plot,
            "--file-timeout": file_timeout,
            "--wide": wide,
        }
        unused = [name for name, value in given.items() if value]
        if unused:
            raise UsageError(f"{', '.join(unused)} cannot be used with --live")
        chosen, graph_tagger = choose(hop if hop is not None or head else 1.0)
        if output and len(output) > 1:
            raise UsageError("--live writes one output: give a single -o")
        _tag_live(
            paths or [],
            output=output[0] if output else None,
            format=format.value if format is not None else None,
            top=top,
            threshold=threshold,
            thresholds=thresholds,
            events=events,
            min_duration=min_duration,
            labels=labels,
            exclude=exclude,
            chosen=chosen,
            graph_tagger=graph_tagger,
            pcm=pcm,
            reconnect=reconnect,
            quiet=quiet,
            tagger_options=dict(
                model=model,
                weights=weights,
                device=device,
                precision=precision.value,
                compile=compile,
                batch_size=batch_size,
                sha256=sha256,
                with_audioset=with_audioset,
            ),
        )
    inputs = paths or []
    interactive = sys.stderr.isatty() and not quiet
    format_name = format.value if format is not None else None
    if wide and format_name is None and not output:
        format_name = "csv"  # (the wide table on standard output: CSV, whether a terminal or a pipe)
    chosen, graph_tagger = choose(hop)
    options = build_output_options(
        format=format_name,
        top=top,
        threshold=threshold,
        timeline=timeline,  # type: ignore[arg-type]
        events=events,
        min_duration=min_duration,
        labels=labels,
        exclude=exclude,
        wide=wide,
        vocabulary=chosen.vocabulary,
        thresholds=thresholds,
    )
    parts_dir = output_dir if output_dir is not None and not per_input_format(format_name) else None
    # Several -o: each in the format of its extension, beside the per-input files of audacity/raven.
    files = list(output or [])
    first_output, more_outputs = (None, files) if per_input_format(format_name) or not files else (files[0], files[1:])
    if more_outputs and format_name is not None and not per_input_format(format_name):
        raise UsageError("with several -o, each output's format comes from its extension: leave out --format")
    target = writer_target(format=format_name, output=first_output, output_dir=None if parts_dir is not None else output_dir)
    network = identify(None if weights else model, weights)  # (what the outputs record, known before the model loads)
    sinks = build_sinks(
        options=options,
        paths=inputs,
        files_from=files_from,
        embeddings=embeddings,
        plot=plot,
        resume=resume,
        window=chosen.window,
        hop=chosen.hop,
        network=network,
    )
    if actors is not None and ray_target is None:
        raise UsageError("--actors goes with --ray")

    def make_tagger() -> Any:
        """Built only after the inputs and options are checked, and after the decode workers started:
        this is where torch is imported (a spinner meanwhile; a download shows a bar of its own).
        An ONNX graph's tagger was built with the options: it needs no torch."""
        if graph_tagger is not None:
            return graph_tagger
        tagger_class: Any
        with progress.status("importing torch"):
            if ray_target is not None:
                from dymn_cli.inference.distributed import RayOptions
                from dymn_cli.ray_tagger import RayTagger

                tagger_class = functools.partial(RayTagger, ray=RayOptions(address=ray_target, actors=actors))
            else:
                from dymn_cli.tagger import Tagger

                tagger_class = Tagger
            from dymn_cli.models.weights import is_cached

            loading = contextlib.nullcontext() if not weights and not is_cached(model) else progress.status("loading the model")
        with loading:
            return tagger_class(
                None if weights else model,
                weights=[str(w) for w in weights] if weights else None,
                device=device,
                batch_size=batch_size,
                precision=precision.value,
                compile=compile,
                sha256=sha256,
                progress=interactive,
                head=chosen.head,
                with_audioset=with_audioset,
            )

    stats = PipelineStats()
    with RunProgress(enabled=interactive, stats=stats, hop=chosen.hop) as progress:
        summary = label_inputs(
            inputs,
            tagger=make_tagger,
            output=target,
            format=format_name,
            options=options,
            extra_sinks=sinks,
            settings=RunSettings(
                window=chosen.window,
                hop=chosen.hop,
                aggregate=aggregate.value,
                workers=workers,
                recursive=recursive,
                decode_first=ray_target is None,
                batch_size=batch_size,
                file_timeout=file_timeout,
            ),
            files_from=files_from,
            resume=resume,
            stdout_is_terminal=sys.stdout is not None and sys.stdout.isatty(),
            on_start=progress.start,
            on_outcome=progress.advance,
            parts_dir=parts_dir,
            part_size=part_size,
            shard=parse_shard(shard) if shard is not None else None,
            more_outputs=more_outputs,
            stats=stats,
            model_name=model_label(network),
            no_overwrite=no_overwrite,
        )
    if summary.output_closed:  # the reader went away (`| head`): no word, the status of SIGPIPE
        raise OutputClosed("standard output closed")
    for problem in summary.problems:
        log.error("%s: %s", problem.path, problem.reason)
    if not quiet:
        log.info(summary.line())
    raise typer.Exit(summary.exit_code)


def _tag_live(
    sources: list[str],
    *,
    output: Path | None,
    format: str | None,
    top: int | None,
    threshold: float | None,
    thresholds: Path | None,
    events: bool,
    min_duration: float,
    labels: str | None,
    exclude: str | None,
    chosen: Any,
    graph_tagger: Any,
    pcm: str | None,
    reconnect: float,
    quiet: bool,
    tagger_options: dict[str, Any],
) -> None:
    """`--live`: a thin layer over `dymn_cli.run.live.tag_live`."""
    from dymn_cli.audio.pcm import PcmFormat
    from dymn_cli.run.live import LiveSettings, tag_live
    from dymn_cli.run.options import build_output_options

    options = build_output_options(
        format=None,
        top=top,
        threshold=threshold,
        events=events,
        min_duration=min_duration,
        labels=labels,
        exclude=exclude,
        vocabulary=chosen.vocabulary,
        thresholds=thresholds,
    )
    settings = LiveSettings(
        window=chosen.window, hop=chosen.hop, pcm=PcmFormat.parse(pcm) if pcm is not None else None, reconnect=reconnect
    )

    def make_tagger() -> Any:
        if graph_tagger is not None:  # (an ONNX graph's, built with the options: no torch)
            return graph_tagger
        from dymn_cli.tagger import Tagger

        weights, model = tagger_options.pop("weights"), tagger_options.pop("model")
        return Tagger(
            None if weights else model,
            weights=[str(w) for w in weights] if weights else None,
            progress=sys.stderr.isatty() and not quiet,
            head=chosen.head,
            **tagger_options,
        )

    summary = tag_live(sources, tagger=make_tagger, output=output, format=format, options=options, settings=settings)
    if summary.output_closed and summary.interrupted is None:  # as offline: no word, the status of SIGPIPE
        raise OutputClosed("standard output closed")
    if summary.interrupted is not None:
        log.error("%s", summary.interrupted)
    if not quiet:
        log.info(summary.line())
    raise typer.Exit(summary.exit_code)
