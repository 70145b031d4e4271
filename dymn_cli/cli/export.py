"""`dymn-tag export -o MODEL.onnx`: the tagger as one ONNX graph (waveform in, scores out), float32 or int8."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from dymn_cli.cli import command_options, metavars
from dymn_cli.cli.choices import Int8Mode

log = logging.getLogger("dymn_cli")


def export_command(
    output: Annotated[Path, command_options.output_option("The ONNX graph to write (tag with it: --weights FILE.onnx).")],
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            metavar=metavars.MODEL,
            help="The network to export; several (repeated or comma-separated): an ensemble.",
        ),
    ] = ["dymn10_as"],  # noqa: B006 - Typer's list default, never mutated
    weights: Annotated[
        list[Path] | None,
        typer.Option(
            "--weights", "-w", metavar=metavars.FILE, help="Local checkpoint file instead of --model (repeat: an ensemble)."
        ),
    ] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", metavar=metavars.HEX, help="Expected SHA-256 of the checkpoint.")
    ] = None,
    head: Annotated[
        Path | None,
        typer.Option(
            "--head", metavar=metavars.FILE, help="A head from dymn-tag train: the graph scores its classes.", show_default=False
        ),
    ] = None,
    int8: Annotated[
        bool, typer.Option("--int8", help="Quantise to int8 (static, calibrated on --calibrate), about 30 % of the size.")
    ] = False,
    int8_mode: Annotated[
        Int8Mode | None,
        typer.Option(
            "--int8-mode",
            case_sensitive=False,
            metavar=metavars.INT8,
            help="--int8: static (the default): int8 products, calibrated; weights: int8 weights, float32 arithmetic "
            "(closer to float32).",
            show_default=False,
        ),
    ] = None,
    calibrate: Annotated[
        Path | None,
        typer.Option(
            "--calibrate",
            metavar=metavars.DIR,
            help="A folder of your own audio for --int8: a quarter of its windows is held out to measure the agreement.",
            show_default=False,
        ),
    ] = None,
    min_agreement: Annotated[
        float | None,
        typer.Option(
            "--min-agreement",
            metavar=metavars.SCORE,
            help="--int8: refuse to write below this top-1 agreement with float32 on the held-out windows, "
            "a fraction or a percentage (0.95 or 95; default 0.98).",
            show_default=False,
        ),
    ] = None,
    no_overwrite: command_options.NoOverwrite = False,
) -> None:
    """Export the tagger as one ONNX graph from waveform to scores (float32, or int8).

    Batch and length are free; the graph carries its labels, window and hop."""
    from dymn_cli.cli.choices import check_one_network
    from dymn_cli.export.api import export_onnx
    from dymn_cli.models.ensemble import split_names

    check_one_network(model, weights)
    names = None if weights else split_names(",".join(model))
    report = export_onnx(
        output,
        model=names,
        weights=weights,
        sha256=sha256,
        head=head,
        int8=int8,
        int8_mode=int8_mode.value if int8_mode is not None else None,
        calibrate=calibrate,
        min_agreement=min_agreement,
        no_overwrite=no_overwrite,
    )
    metadata = report.metadata
    log.info(
        "%s: %s, %d classes, %.1f MB%s",
        output,
        metadata.model,
        len(metadata.labels),
        report.size / 1e6,
        " (int8)" if report.agreement is not None else "",
    )
