"""Which labels a run reports, and over which windows (the Labels and Windows panels).

Each option of `dymn_cli.cli.tag.tag` as an `Annotated` type, named after its parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dymn_cli.cli import metavars, panels
from dymn_cli.cli.choices import Aggregate, parse_top, positive_seconds

Top = Annotated[
    str,
    typer.Option(
        "--top",
        "-k",
        metavar=metavars.TOP,
        help="How many labels per input (with --events: the events of the K labels with the highest peak), or all. --live: the labels of each window record; events are not limited.",
        callback=parse_top,
        rich_help_panel=panels.LABELS,
    ),
]

Threshold = Annotated[
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
]

Thresholds = Annotated[
    Path | None,
    typer.Option(
        "--thresholds",
        metavar="FILE",
        help="Each class's own threshold: a CSV label,mid,threshold (evaluate --save-thresholds writes one); "
        "other classes keep --threshold.",
        rich_help_panel=panels.LABELS,
    ),
]

Labels = Annotated[
    str | None,
    typer.Option(
        "--labels",
        metavar=metavars.NAMES,
        help="Only these classes: names, ontology nodes (a whole subtree, e.g. Animal) or mids, comma-separated, or @FILE.",
        rich_help_panel=panels.LABELS,
    ),
]

Exclude = Annotated[
    str | None,
    typer.Option(
        "--exclude",
        metavar=metavars.NAMES,
        help="Leave out these classes (same forms as --labels).",
        rich_help_panel=panels.LABELS,
    ),
]

Timeline = Annotated[
    bool,
    typer.Option(
        "--timeline",
        help="Also report each window's labels (CSV: a row per window and label); honours --top and --threshold.",
        rich_help_panel=panels.LABELS,
    ),
]

Events = Annotated[
    bool,
    typer.Option(
        "--events",
        help="Report sound events: when each label scores at least --threshold (default 0.5), on the hop grid.",
        rich_help_panel=panels.LABELS,
    ),
]

MinDuration = Annotated[
    float,
    typer.Option(
        "--min-duration",
        metavar=metavars.SECONDS,
        help="Drop sound events shorter than this.",
        min=0.0,
        rich_help_panel=panels.LABELS,
    ),
]

Window = Annotated[
    float | None,
    typer.Option(
        "--window",
        metavar=metavars.SECONDS,
        help="Window length (default: 10, or the --head's, or the .onnx graph's).",
        callback=positive_seconds,
        show_default=False,
        rich_help_panel=panels.WINDOWS,
    ),
]

Hop = Annotated[
    float | None,
    typer.Option(
        "--hop",
        metavar=metavars.SECONDS,
        help="Time between window starts (default: the window, at most 10; or the --head's, or the .onnx graph's; --live: 1).",
        callback=positive_seconds,
        show_default=False,
        rich_help_panel=panels.WINDOWS,
    ),
]

Aggregate = Annotated[
    Aggregate,
    typer.Option("--aggregate", case_sensitive=False, help="Clip score from the window scores.", rich_help_panel=panels.WINDOWS),
]
