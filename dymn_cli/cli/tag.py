"""`dymn-tag [PATHS]`: tag audio files, a thin layer over `dymn_cli.run.runner.label_inputs`."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dymn_cli.errors import OutputClosed, UsageError
from dymn_cli.run.shards import DEFAULT_PART_SIZE, parse_shard
from dymn_cli.version import __version__

log = logging.getLogger("dymn_cli")

EPILOG = """\
Examples:

  dymn-tag song.wav --top 5                     best 5 labels as a table

  dymn-tag recordings/ -o labels.csv            a folder tree to CSV (also .json, .jsonl)

  find . -name '*.flac' | dymn-tag --files-from - > labels.jsonl

  curl -s https://example.org/clip.mp3 | dymn-tag - --format json

  dymn-tag models                               the published models and what is cached

  dymn-tag walk.wav --window 2 --hop 0.5 --events --threshold 0.4 --format audacity
                                                sound events as an Audacity label track

  dymn-tag park.wav --labels Animal --exclude Insect --timeline --plot park.png

  dymn-tag labels dog                           classes matching 'dog' (and below the node Dog)

  dymn-tag train sounds/ -o sounds.safetensors  a head for your own classes (sounds/<class>/*.wav)
  dymn-tag pond.wav --head sounds.safetensors   tag with its classes (--with-audioset: and AudioSet's)

  dymn-tag search query.wav --index library.npz the most similar clips (index: --embeddings)
"""

tag_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dymn-tag {__version__}")
        raise typer.Exit()


def _parse_top(value: str) -> int | None:
    if value.lower() == "all":
        return None
    try:
        top = int(value)
    except ValueError:
        raise UsageError(f"--top must be a positive number or 'all', got {value!r}") from None
    if top < 1:
        raise UsageError(f"--top must be a positive number or 'all', got {value!r}")
    return top


@tag_app.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
def tag(
    paths: Annotated[list[str] | None, typer.Argument(help="Audio files, folders (walked), or - for audio on stdin.", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write results to this file (format from its extension).")] = None,
    format: Annotated[str | None, typer.Option("-f", "--format", help="table, csv, json, jsonl or parquet (default: from -o, else table on a terminal, jsonl in a pipe); audacity or raven: a sound-event file per input.")] = None,
    top: Annotated[str, typer.Option("--top", "-k", help="How many labels per input, or 'all'.")] = "10",
    threshold: Annotated[float | None, typer.Option("--threshold", "-t", help="Keep only labels scoring at least this.", min=0.0, max=1.0)] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Published model name, or several joined by commas for an ensemble.")] = "dymn10_as",
    weights: Annotated[list[Path] | None, typer.Option("--weights", "-w", help="Local checkpoint file instead of --model (repeat for an ensemble).")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="Expected SHA-256 of the checkpoint.")] = None,
    device: Annotated[str, typer.Option("--device", "-d", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto (float16 on CUDA, float32 on CPU), float32, float16 or bfloat16.")] = "auto",
    compile: Annotated[bool, typer.Option("--compile", help="Compile the network with torch.compile (minutes of compiling first, again at each new batch size; on the CPU no faster than the default).")] = False,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", help="Windows per network call (default: 8 per CPU lane, i.e. per torch thread; 16 on CUDA).", min=1, show_default=False)] = None,
    window: Annotated[float | None, typer.Option("--window", help="Window length in seconds (default: 10, or the --head's).", show_default=False)] = None,
    hop: Annotated[float | None, typer.Option("--hop", help="Seconds between window starts (default: 10, or the --head's).", show_default=False)] = None,
    aggregate: Annotated[str, typer.Option("--aggregate", help="Clip score from window scores: mean or max.")] = "mean",
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Decoding processes (default: from the CPU count).", min=0)] = None,
    file_timeout: Annotated[float | None, typer.Option("--file-timeout", metavar="SECONDS", help="Fail an input that takes longer than this to decode and tag ('timed out after N s') and go on (default: no limit).", show_default=False)] = None,
    files_from: Annotated[str | None, typer.Option("--files-from", "-T", help="Read input paths, one a line, from this file or - (stdin).")] = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Walk folders recursively.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="Skip inputs already recorded in -o (written with the same model and settings) and add the rest.")] = False,
    no_overwrite: Annotated[bool, typer.Option("--no-overwrite", "-n", help="Refuse to replace an existing output file (without --resume, a run replaces it).")] = False,
    timeline: Annotated[bool, typer.Option("--timeline", help="Also report each window's labels (CSV: a row per window and label); honours --top/--threshold.")] = False,
    events: Annotated[bool, typer.Option("--events", help="Report sound events: when each label scores at least --threshold (default 0.5), on the hop grid.")] = False,
    min_duration: Annotated[float, typer.Option("--min-duration", help="Drop sound events shorter than this many seconds.", min=0.0)] = 0.0,
    labels: Annotated[str | None, typer.Option("--labels", help="Only these classes: names, ontology nodes (a whole subtree, e.g. Animal) or mids, comma-separated, or @file.")] = None,
    exclude: Annotated[str | None, typer.Option("--exclude", help="Leave out these classes (same forms as --labels).")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", help="Folder for the per-input files of --format audacity|raven, mirroring the inputs' paths (default: beside each input); for csv, json, jsonl (default) or parquet: numbered part files, each finished at --part-size inputs.")] = None,
    part_size: Annotated[int, typer.Option("--part-size", help="Inputs per part file with --output-dir.", min=1)] = DEFAULT_PART_SIZE,
    shard: Annotated[str | None, typer.Option("--shard", metavar="I/N", help="Tag only shard I of N (I counts from 0): a stable split of the inputs for job arrays; join the outputs with `dymn-tag merge`.")] = None,
    ray_target: Annotated[str | None, typer.Option("--ray", metavar="local|auto|ADDRESS", help="Run on Ray: local (an instance for this run), auto (the cluster this machine is in, e.g. under `ray job submit`) or a cluster address. Needs pip install 'dymn-cli[ray]'.")] = None,
    actors: Annotated[int | None, typer.Option("--actors", help="With --ray: inference actors, each loading the model once (default: one per GPU, else 1).", min=1)] = None,
    embeddings: Annotated[Path | None, typer.Option("--embeddings", help="Write clip embeddings (and window embeddings with --timeline) to this .npz file.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw the top labels over time with the loudness: a .png file (one input) or a folder (needs matplotlib).")] = None,
    live: Annotated[bool, typer.Option("--live", help="The inputs are live streams (-, a FIFO or device, a URL such as http://, rtsp://, srt://, udp://), tagged as they arrive: a JSON line per window and per event, at once (default hop 1 s).")] = False,
    pcm: Annotated[str | None, typer.Option("--pcm", metavar="FORMAT:RATE:CHANNELS", help="With --live: the streams are headerless PCM, e.g. s16le:32000:1 (s16le, s24le, s32le, f32le, f64le, u8, s8; be for big-endian).")] = None,
    reconnect: Annotated[float, typer.Option("--reconnect", metavar="SECONDS", help="With --live: reopen a network stream that drops, for up to this long (0: never).", min=0.0)] = 300.0,
    head: Annotated[Path | None, typer.Option("--head", help="Score the classes of this head (from `dymn-tag train`) instead of AudioSet's.")] = None,
    with_audioset: Annotated[bool, typer.Option("--with-audioset", help="With --head: the AudioSet classes too, before the head's.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Tag audio with AudioSet labels using the published DyMN / MobileNetV3 models."""
    from dymn_cli.cli.progress import RunProgress
    from dymn_cli.inference.allocator import keep_freed_memory
    from dymn_cli.run.options import build_output_options, build_sinks, choose_head, per_input_format, writer_target
    from dymn_cli.run.runner import RunSettings, label_inputs

    keep_freed_memory()
    if pcm is not None and not live:
        raise UsageError("--pcm describes a live stream: use it with --live")
    if live:
        given = {"--files-from": files_from, "--resume": resume, "--timeline": timeline, "--output-dir": output_dir,
                 "--shard": shard, "--ray": ray_target, "--embeddings": embeddings, "--plot": plot,
                 "--file-timeout": file_timeout}
        unused = [name for name, value in given.items() if value]
        if unused:
            raise UsageError(f"{', '.join(unused)} cannot be used with --live")
        chosen = choose_head(head, with_audioset=with_audioset, window=window, hop=hop if hop is not None or head else 1.0)
        _tag_live(paths or [], output=output, format=format, top=top, threshold=threshold, events=events,
                  min_duration=min_duration, labels=labels, exclude=exclude, chosen=chosen, pcm=pcm,
                  reconnect=reconnect, quiet=quiet, tagger_options=dict(model=model, weights=weights, device=device,
                  precision=precision, compile=compile, batch_size=batch_size, sha256=sha256,
                  with_audioset=with_audioset))
    inputs = paths or []
    interactive = sys.stderr.isatty() and not quiet
    chosen = choose_head(head, with_audioset=with_audioset, window=window, hop=hop)
    options = build_output_options(format=format, top=_parse_top(top), threshold=threshold, timeline=timeline,
                                   events=events, min_duration=min_duration, labels=labels, exclude=exclude,
                                   vocabulary=chosen.vocabulary)
    parts_dir = output_dir if output_dir is not None and not per_input_format(format) else None
    target = writer_target(format=format, output=output, output_dir=None if parts_dir is not None else output_dir)
    sinks = build_sinks(options=options, paths=inputs, files_from=files_from, embeddings=embeddings, plot=plot, resume=resume,
                        window=chosen.window, hop=chosen.hop)
    if actors is not None and ray_target is None:
        raise UsageError("--actors goes with --ray")

    def make_tagger() -> Any:
        """Built only after the inputs and options are checked, and after the decode workers started:
        this is where torch is imported."""
        tagger_class: Any
        if ray_target is not None:
            from dymn_cli.inference.distributed import RayOptions
            from dymn_cli.ray_tagger import RayTagger

            tagger_class = functools.partial(RayTagger, ray=RayOptions(address=ray_target, actors=actors))
        else:
            from dymn_cli.tagger import Tagger

            tagger_class = Tagger
        return tagger_class(
            None if weights else model,
            weights=[str(w) for w in weights] if weights else None,
            device=device,
            batch_size=batch_size,
            precision=precision,
            compile=compile,
            sha256=sha256,
            progress=interactive,
            head=chosen.head,
            with_audioset=with_audioset,
        )

    with RunProgress(enabled=interactive) as progress:
        summary = label_inputs(
            inputs,
            tagger=make_tagger,
            output=target,
            format=format,
            options=options,
            extra_sinks=sinks,
            settings=RunSettings(window=chosen.window, hop=chosen.hop, aggregate=aggregate, workers=workers, recursive=recursive,
                                 decode_first=ray_target is None, batch_size=batch_size,
                                 file_timeout=_check_timeout(file_timeout)),
            files_from=files_from,
            resume=resume,
            stdout_is_terminal=sys.stdout is not None and sys.stdout.isatty(),
            on_start=progress.start,
            on_outcome=progress.advance,
            parts_dir=parts_dir,
            part_size=part_size,
            shard=parse_shard(shard) if shard is not None else None,
            model_name=_model_name(model, weights),
            no_overwrite=no_overwrite,
        )
    if summary.output_closed:  # the reader went away (`| head`): no word, the status of SIGPIPE
        raise OutputClosed("standard output closed")
    for problem in summary.problems:
        log.error("%s: %s", problem.path, problem.reason)
    if not quiet:
        log.info(summary.line())
    raise typer.Exit(summary.exit_code)


def _tag_live(sources: list[str], *, output: Path | None, format: str | None, top: str, threshold: float | None,
              events: bool, min_duration: float, labels: str | None, exclude: str | None, chosen: Any,
              pcm: str | None, reconnect: float, quiet: bool, tagger_options: dict[str, Any]) -> None:
    """`--live`: a thin layer over `dymn_cli.run.live.tag_live`."""
    from dymn_cli.audio.live import PcmFormat
    from dymn_cli.run.live import LiveSettings, tag_live
    from dymn_cli.run.options import build_output_options

    options = build_output_options(format=None, top=_parse_top(top), threshold=threshold, events=events,
                                   min_duration=min_duration, labels=labels, exclude=exclude, vocabulary=chosen.vocabulary)
    settings = LiveSettings(window=chosen.window, hop=chosen.hop,
                            pcm=PcmFormat.parse(pcm) if pcm is not None else None, reconnect=reconnect)

    def make_tagger() -> Any:
        from dymn_cli.tagger import Tagger

        weights, model = tagger_options.pop("weights"), tagger_options.pop("model")
        return Tagger(None if weights else model, weights=[str(w) for w in weights] if weights else None,
                      progress=sys.stderr.isatty() and not quiet, head=chosen.head, **tagger_options)

    summary = tag_live(sources, tagger=make_tagger, output=output, format=format, options=options, settings=settings)
    if summary.interrupted is not None:
        log.error("%s", summary.interrupted)
    if not quiet:
        log.info(summary.line())
    raise typer.Exit(summary.exit_code)


def _check_timeout(seconds: float | None) -> float | None:
    if seconds is not None and not (seconds > 0 and seconds < float("inf")):
        raise UsageError(f"--file-timeout must be a positive number of seconds, got {seconds:g}")
    return seconds


def _model_name(model: str, weights: list[Path] | None) -> str:
    """The name the tagger will give its model (`Tagger.name`), known before it loads."""
    if weights:
        return ",".join(Path(w).stem for w in weights)
    return ",".join(n.strip() for n in model.split(",") if n.strip())
