"""`dymn-tag merge OUTPUTS... -o FILE`: join the outputs of shards or part files into one file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from dymn_cli.cli import command_options, metavars

log = logging.getLogger("dymn_cli")


def merge_command(
    outputs: Annotated[
        list[Path],
        typer.Argument(
            metavar=metavars.PATHS,
            help="Outputs of one format to join: files (e.g. of --shard jobs) or folders of part files (--output-dir).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        command_options.output_option(
            "The merged file; its extension names the format: .csv, .json, .jsonl, .parquet, or .npz for --embeddings archives."
        ),
    ],
    no_overwrite: command_options.NoOverwrite = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary line.")] = False,
) -> None:
    """Join the outputs of shards or part files into one file.

    Inputs come in folder-walk order (the order `dymn-tag FOLDER` writes)."""
    from dymn_cli.writers.merge import merge_outputs

    summary = merge_outputs(outputs, output, no_overwrite=no_overwrite)
    if not quiet:
        log.info(summary.line(output))
