"""Options that the commands beside tagging share (train, merge, evaluate, export), declared once, and
what every command's -o does with `-`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from dymn_cli.cli import metavars

NoOverwrite = Annotated[bool, typer.Option("--no-overwrite", "-n", help="Refuse to replace an existing file.")]
"""--no-overwrite of a command that writes one file."""


STANDARD_OUTPUT = Path("/dev/stdout")

OutputValue = TypeVar("OutputValue", Path, list[Path], None)


def dash_is_standard_output(value: OutputValue) -> OutputValue:
    """`-o -` is standard output, as `-` among the inputs is standard input (and as for curl, tar and
    ffmpeg): without this, a file named `-` was written. /dev/stdout is a stream every writer takes."""
    if isinstance(value, list):
        return [STANDARD_OUTPUT if str(item) == "-" else item for item in value]
    return STANDARD_OUTPUT if value is not None and str(value) == "-" else value


def output_option(help: str) -> Any:
    """The `-o FILE` of a command that writes one file (`-`: standard output), with its own help."""
    return typer.Option("-o", "--output", callback=dash_is_standard_output, metavar=metavars.FILE, help=help, show_default=False)
