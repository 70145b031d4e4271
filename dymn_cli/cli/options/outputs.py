"""The outputs' options of `dymn-tag [PATHS]`: where results go, in which format (the Output panel).

Each option of `dymn_cli.cli.tag.tag` as an `Annotated` type, named after its parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dymn_cli.cli import metavars, panels
from dymn_cli.cli.choices import OutputFormat
from dymn_cli.cli.command_options import dash_is_standard_output

Output = Annotated[
    list[Path] | None,
    typer.Option(
        "-o",
        "--output",
        callback=dash_is_standard_output,
        metavar=metavars.FILE,
        help="Write results to this file, its format from its extension (.csv, .json, .jsonl, .parquet); repeat for several.",
        show_default=False,
        rich_help_panel=panels.OUTPUT,
    ),
]

Format = Annotated[
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
]

Wide = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="One row per input, one column per label (csv, parquet; CSV on stdout): every score, or those of --labels.",
        rich_help_panel=panels.OUTPUT,
    ),
]

OutputDir = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        metavar=metavars.DIR,
        help="audacity, raven: the folder for the per-input files, mirroring the inputs' paths (default: beside each input). csv, json, jsonl, parquet: numbered part files of --part-size inputs.",
        rich_help_panel=panels.OUTPUT,
    ),
]

PartSize = Annotated[
    int,
    typer.Option(
        "--part-size",
        metavar=metavars.N,
        help="Inputs per part file with --output-dir.",
        min=1,
        rich_help_panel=panels.OUTPUT,
    ),
]

Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Skip inputs already recorded in -o (written with the same model and settings) and add the rest.",
        rich_help_panel=panels.OUTPUT,
    ),
]

NoOverwrite = Annotated[
    bool,
    typer.Option(
        "--no-overwrite",
        "-n",
        help="Refuse to replace an existing output file (without --resume, a run replaces it).",
        rich_help_panel=panels.OUTPUT,
    ),
]

Embeddings = Annotated[
    Path | None,
    typer.Option(
        "--embeddings",
        metavar=metavars.FILE,
        help="Write clip embeddings (and window embeddings with --timeline) to this .npz file.",
        rich_help_panel=panels.OUTPUT,
    ),
]

Plot = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        metavar=metavars.FILE_OR_DIR,
        help="Draw the top labels over time with the loudness: a .png file (one input) or a folder (needs matplotlib).",
        rich_help_panel=panels.OUTPUT,
    ),
]
