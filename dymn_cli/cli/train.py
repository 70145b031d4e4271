"""`dymn-tag train DATA -o HEAD`: a classification head for your own classes on the network's embeddings."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dymn_cli.cli import command_options, metavars
from dymn_cli.cli.choices import check_device, positive_seconds

log = logging.getLogger("dymn_cli")


def local_tagger(model: str | None, weights: list[Path] | None, **options: Any) -> Any:
    """A `Tagger` of `--model`, or of the `--weights` files when given; an `OnnxTagger` for one graph
    from `dymn-tag export` (an index made with a graph is searched with it)."""
    from dymn_cli.run.graph import graph_weights

    if (graph := graph_weights(weights)) is not None:
        from dymn_cli.onnx_tagger import OnnxTagger

        options.pop("progress", None)  # (a graph loads at once: no loading progress to show)
        return OnnxTagger(graph, **options)
    from dymn_cli.run.taggers import graph_renamed
    from dymn_cli.tagger import Tagger

    with graph_renamed(len(weights or ())):
        return Tagger(None if weights else model, weights=[str(w) for w in weights] if weights else None, **options)


def train_command(
    data: Annotated[
        Path,
        typer.Argument(
            metavar=metavars.FILE_OR_DIR,
            help="A folder with one subfolder of audio files per class, or a CSV of path,label[,start,end].",
            show_default=False,
        ),
    ],
    output: Annotated[Path, command_options.output_option("The head file to write (safetensors), for --head.")],
    model: Annotated[
        str, typer.Option("--model", "-m", metavar=metavars.MODEL, help="The network whose embeddings the head learns from.")
    ] = "dymn10_as",
    weights: Annotated[
        list[Path] | None,
        typer.Option("--weights", "-w", metavar=metavars.FILE, help="Local checkpoint file instead of --model."),
    ] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", metavar=metavars.HEX, help="Expected SHA-256 of the checkpoint.")
    ] = None,
    window: Annotated[
        float,
        typer.Option(
            "--window",
            metavar=metavars.SECONDS,
            callback=positive_seconds,
            help="Window length in seconds (tagging with the head uses it too).",
        ),
    ] = 10.0,
    hop: Annotated[
        float | None,
        typer.Option(
            "--hop",
            metavar=metavars.SECONDS,
            callback=positive_seconds,
            help="Seconds between window starts (default: the window).",
            show_default=False,
        ),
    ] = None,
    hidden: Annotated[
        int | None,
        typer.Option(
            "--hidden", metavar=metavars.N, help="Units of one hidden layer (default: a linear head).", min=1, show_default=False
        ),
    ] = None,
    folds: Annotated[
        int,
        typer.Option(
            "--folds", metavar=metavars.N, help="Cross-validation folds over files for the held-out figures (0: none).", min=0
        ),
    ] = 5,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            "-d",
            metavar=metavars.DEVICE,
            callback=check_device,
            help="Where the network runs (auto: CUDA when there is one).",
        ),
    ] = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", "-b", metavar=metavars.N, help="Windows per network call.", min=1, show_default=False),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", metavar=metavars.N, help="Decoding processes (default: from the CPU count).", min=0),
    ] = None,
    no_overwrite: command_options.NoOverwrite = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary.")] = False,
) -> None:
    """Train a classification head for your own classes on the network's embeddings.

    Prints held-out figures (a table on a terminal, JSON in a pipe); tag with the head with --head."""
    from dymn_cli.cli.choices import check_one_network
    from dymn_cli.cli.progress import RunProgress
    from dymn_cli.models.head import head_bytes
    from dymn_cli.transfer import TrainingSettings, read_training_data, train_head
    from dymn_cli.writers.destination import claim_output, input_files
    from dymn_cli.writers.output_file import written

    check_one_network(model, weights)
    claim_output("-o", output, inputs=input_files([data]), no_overwrite=no_overwrite)  # (before reading anything)
    labelled = read_training_data(data)
    target = claim_output("-o", output, inputs=[data, *(f.path for f in labelled.files)], no_overwrite=no_overwrite)
    for warning in labelled.warnings:  # (before the embedding, which may take a while)
        log.warning("warning: %s", warning)
    settings = TrainingSettings(window=window, hop=window if hop is None else hop, hidden=hidden, folds=folds, workers=workers)
    interactive = sys.stderr.isatty() and not quiet
    with RunProgress(enabled=interactive) as progress:
        tagger = local_tagger(model, weights, device=device, batch_size=batch_size, sha256=sha256, progress=interactive)
        progress.start(labelled.files)
        report = train_head(labelled, tagger, settings, on_outcome=progress.advance)
    with written(target) as out:
        out.write(head_bytes(report.head))
    for warning in report.warnings:
        log.warning("warning: %s", warning)
    _show_figures(report)
    if not quiet:
        log.info(
            "%s: %d classes from %d windows of %d files (%d failed); embeddings %.1f s, training %.1f s",
            output,
            len(report.head.classes),
            report.n_windows,
            report.n_files,
            len(report.failures),
            report.embedding_seconds,
            report.training_seconds,
        )
    raise typer.Exit(1 if report.failures else 0)


def _show_figures(report: Any) -> None:
    if not sys.stdout.isatty():
        typer.echo(json.dumps(report.figures(), ensure_ascii=False))
        return
    if not report.classes:
        return
    from rich.console import Console
    from rich.table import Table

    summary = ", ".join(f"{k} {v:.3f}" if k != "folds" else f"{v:g} folds" for k, v in report.summary.items())
    table = Table(title=f"held out ({summary}; windows)", title_justify="left")
    for column in ("class", "files", "windows", "precision", "recall", "AP"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for c in report.classes:
        table.add_row(c.name, str(c.files), str(c.windows), f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.average_precision:.3f}")
    Console().print(table)
