"""`dymn-tag download NAME...`: fetch published models into the cache ahead of time."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dymn_cli.cli import metavars
from dymn_cli.errors import UsageError


def download_command(
    names: Annotated[list[str], typer.Argument(metavar=metavars.MODEL, help="Model names (see `dymn-tag models`), or 'all'.")],
    sha256: Annotated[
        str | None, typer.Option("--sha256", metavar=metavars.HEX, help="Expected SHA-256 (one model only).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download published models into the cache, e.g. on a connected machine for one offline.

    The cache is $DYMN_CACHE_DIR (default ~/.cache/dymn-cli); copy it, or point --weights at a file."""
    from dymn_cli.models.download import download
    from dymn_cli.models.weights import REGISTRY, get_record

    records = list(REGISTRY.values()) if names == ["all"] else [get_record(n) for n in names]
    if sha256 is not None and len(records) != 1:
        raise UsageError("--sha256 applies to one model at a time")
    for record in records:
        path = download(record, sha256=sha256, progress=sys.stderr.isatty() and not quiet)
        typer.echo(str(path))
