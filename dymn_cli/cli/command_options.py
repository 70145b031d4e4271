"""Options that the commands beside tagging share (train, merge, evaluate, export), declared once."""

from __future__ import annotations

from typing import Annotated

import typer

NoOverwrite = Annotated[bool, typer.Option("--no-overwrite", "-n", help="Refuse to replace an existing file.")]
"""--no-overwrite of a command that writes one file."""
