"""`dymn-tag evaluate RESULTS... --truth TRUTH`: how well a run's tags match ground truth."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from dymn_cli.cli import command_options, metavars

log = logging.getLogger("dymn_cli")


def evaluate_command(
    results: Annotated[
        list[Path],
        typer.Argument(
            metavar=metavars.RESULTS,
            help="What dymn-tag wrote: .jsonl, .json, .csv (long or --wide), .parquet, or folders of part files.",
            show_default=False,
        ),
    ],
    truth: Annotated[
        list[Path],
        typer.Option(
            "--truth",
            metavar=metavars.FILE_OR_DIR,
            help="Ground truth: a path,label[,start,end] CSV, class folders, AudioSet segment CSVs, Raven selection "
            "tables or Audacity label files (repeat for several).",
            show_default=False,
        ),
    ],
    threshold: Annotated[
        float,
        typer.Option("--threshold", "-t", metavar=metavars.SCORE, min=0.0, max=1.0, help="Score that counts as a detection."),
    ] = 0.5,
    thresholds: Annotated[
        Path | None,
        typer.Option(
            "--thresholds",
            metavar=metavars.FILE,
            help="Also score at each class's own threshold: a CSV label,mid,threshold (what --save-thresholds writes, "
            "as dymn-tag --thresholds applies it); other classes keep --threshold.",
            show_default=False,
        ),
    ] = None,
    collar: Annotated[
        float, typer.Option("--collar", metavar=metavars.SECONDS, min=0.0, help="Event-based figures: the onset collar.")
    ] = 0.2,
    resolution: Annotated[
        float, typer.Option("--resolution", metavar=metavars.SECONDS, min=0.01, help="Segment-based figures: the segment length.")
    ] = 1.0,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            metavar=metavars.FORMAT,
            help="table, json, or csv (the classes' rows); default: from -o's extension (.json, .csv, .txt), "
            "else a table on a terminal and JSON in a pipe.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Path | None, command_options.output_option("Write the report to FILE (-: standard output).")] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar=metavars.FILE_OR_DIR,  # (--plot's one name in every command; evaluate's is a folder)
            help="A folder (made if missing) for pr_curves.png and class_ap.png (needs matplotlib).",
            show_default=False,
        ),
    ] = None,
    save_thresholds: Annotated[
        Path | None,
        typer.Option(
            "--save-thresholds",
            metavar=metavars.FILE,
            help="Write each class's best-F1 threshold (CSV label,mid,threshold) for dymn-tag --thresholds.",
            show_default=False,
        ),
    ] = None,
    no_overwrite: command_options.NoOverwrite = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No warnings.")] = False,
) -> None:
    """Score results against ground truth: mAP, AUC, d', lwlrap, F1, best thresholds.

    A class missing from a result (a --top K list) counts as the lowest score: tag with --top all."""
    from dymn_cli.evaluate.evaluation import evaluate
    from dymn_cli.evaluate.outputs import EvaluationOutputs, check_outputs, saved_thresholds_lines, write_outputs

    outputs = EvaluationOutputs(
        format=format.lower() if format else None, output=output, thresholds=save_thresholds, plot=plot, no_overwrite=no_overwrite
    )
    check_outputs(outputs, inputs=[*results, *truth, *([thresholds] if thresholds else [])])
    evaluation = evaluate(results, truth, threshold=threshold, thresholds=thresholds, collar=collar, resolution=resolution)
    if not quiet:
        for warning in evaluation.warnings:
            log.warning("warning: %s", warning)
    write_outputs(evaluation, outputs)
    if save_thresholds is not None and not quiet:
        saved, warning = saved_thresholds_lines(evaluation, save_thresholds)
        log.info("%s", saved)
        if warning is not None:
            log.warning("warning: %s", warning)
