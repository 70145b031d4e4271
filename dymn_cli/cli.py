"""`dymn-tag`: a thin command line over `dymn_cli.run.label_inputs` and the weights registry.

Errors are `DymnError`s raised below this layer; `main` turns them into one line on stderr and an
exit code, in one place: 0 all tagged, 1 some input failed, 2 usage error, 130/143 stopped by a signal.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import DymnError, UsageError

log = logging.getLogger("dymn_cli")

SUBCOMMANDS = ("models", "download")

EPILOG = """\
Examples:

  dymn-tag song.wav --top 5                     best 5 labels as a table

  dymn-tag recordings/ -o labels.csv            a folder tree to CSV (also .json, .jsonl)

  find . -name '*.flac' | dymn-tag --files-from - > labels.jsonl

  curl -s https://example.org/clip.mp3 | dymn-tag - --format json

  dymn-tag models                               the published models and what is cached
"""

tag_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
commands_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None, no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dymn-tag {__version__}")
        raise typer.Exit()


def _parse_top(value: str) -> Optional[int]:
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
    paths: Annotated[Optional[list[str]], typer.Argument(help="Audio files, folders (walked), or - for audio on stdin.", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write results to this file (format from its extension).")] = None,
    format: Annotated[Optional[str], typer.Option("-f", "--format", help="table, csv, json or jsonl (default: from -o, else table on a terminal, jsonl in a pipe).")] = None,
    top: Annotated[str, typer.Option("--top", "-k", help="How many labels per input, or 'all'.")] = "10",
    threshold: Annotated[Optional[float], typer.Option("--threshold", "-t", help="Keep only labels scoring at least this.", min=0.0, max=1.0)] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Published model name, or several joined by commas for an ensemble.")] = "dymn10_as",
    weights: Annotated[Optional[list[Path]], typer.Option("--weights", "-w", help="Local checkpoint file instead of --model (repeat for an ensemble).")] = None,
    sha256: Annotated[Optional[str], typer.Option("--sha256", help="Expected SHA-256 of the checkpoint.")] = None,
    device: Annotated[str, typer.Option("--device", "-d", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto (float16 on CUDA, float32 on CPU), float32, float16 or bfloat16.")] = "auto",
    compile: Annotated[bool, typer.Option("--compile", help="Compile the network with torch.compile.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Windows per network call.", min=1)] = 16,
    window: Annotated[float, typer.Option("--window", help="Window length in seconds.")] = 10.0,
    hop: Annotated[float, typer.Option("--hop", help="Seconds between window starts.")] = 10.0,
    aggregate: Annotated[str, typer.Option("--aggregate", help="Clip score from window scores: mean or max.")] = "mean",
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", help="Decoding processes (default: from the CPU count).", min=0)] = None,
    files_from: Annotated[Optional[str], typer.Option("--files-from", "-T", help="Read input paths, one a line, from this file or - (stdin).")] = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Walk folders recursively.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="Skip inputs already recorded in -o and add the rest.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Tag audio with AudioSet labels using the published DyMN / MobileNetV3 models."""
    from .outputs import OutputOptions
    from .progress import RunProgress
    from .run import RunSettings, label_inputs
    from .tagger import Tagger

    inputs = paths or []
    interactive = sys.stderr.isatty() and not quiet
    options = OutputOptions(top=_parse_top(top), threshold=threshold)
    make_tagger = lambda: Tagger(  # noqa: E731 - built only after the inputs and options are checked
        None if weights else model,
        weights=[str(w) for w in weights] if weights else None,
        device=device,
        batch_size=batch_size,
        precision=precision,
        compile=compile,
        sha256=sha256,
        progress=interactive,
    )
    with RunProgress(enabled=interactive) as progress:
        summary = label_inputs(
            inputs,
            tagger=make_tagger,
            output=output,
            format=format,
            options=options,
            settings=RunSettings(window=window, hop=hop, aggregate=aggregate, workers=workers, recursive=recursive),
            files_from=files_from,
            resume=resume,
            stdout_is_terminal=sys.stdout.isatty(),
            on_start=progress.start,
            on_outcome=progress.advance,
        )
    for problem in summary.problems:
        log.error("%s: %s", _one_line(problem.path), problem.reason)
    if not quiet:
        log.info(summary.line())
    raise typer.Exit(summary.exit_code)


@commands_app.command("models")
def models_command() -> None:
    """List the published models: family, width, parameters, mAP, and whether each is cached."""
    from rich.console import Console
    from rich.table import Table

    from .weights import REGISTRY, cache_dir, cached_path

    table = Table(title=f"Published AudioSet models (cache: {cache_dir()})", title_justify="left")
    for column in ("name", "family", "width", "params", "mAP", "cached"):
        table.add_column(column, justify="right" if column in ("width", "params", "mAP") else "left")
    for record in sorted(REGISTRY.values(), key=lambda r: (r.family != "dymn", r.width, r.name)):
        table.add_row(
            record.name,
            "DyMN" if record.family == "dymn" else "MobileNetV3",
            f"{record.width:g}",
            f"{record.num_params / 1e6:.1f} M",
            f"{record.map:.3f}" if record.map is not None else "-",
            "yes" if cached_path(record).exists() else "no",
        )
    Console().print(table)


@commands_app.command("download")
def download_command(
    names: Annotated[list[str], typer.Argument(help="Model names (see `dymn-tag models`), or 'all'.")],
    sha256: Annotated[Optional[str], typer.Option("--sha256", help="Expected SHA-256 (one model only).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download published models into the cache ahead of time."""
    from .weights import REGISTRY, download, get_record

    records = list(REGISTRY.values()) if names == ["all"] else [get_record(n) for n in names]
    if sha256 is not None and len(records) != 1:
        raise UsageError("--sha256 applies to one model at a time")
    for record in records:
        path = download(record, sha256=sha256, progress=sys.stderr.isatty() and not quiet)
        typer.echo(str(path))


def _one_line(text: str) -> str:
    """Paths may hold newlines; a report stays one line per problem."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `dymn-tag`; returns (and exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="dymn-tag: %(message)s", stream=sys.stderr)
    app = commands_app if args and args[0] in SUBCOMMANDS else tag_app
    command = typer.main.get_command(app)
    try:
        # Typer reports its own usage errors (exit 2) and turns typer.Exit into the exit code.
        command.main(args=args, prog_name="dymn-tag", standalone_mode=True)
        code = 0
    except DymnError as error:
        log.error("error: %s", _one_line(str(error)))
        code = error.exit_code
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)

if __name__ == "__main__":
    main()
