"""`dymn-tag labels [QUERY]`: the AudioSet classes matching a query, with their place in the ontology."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dymn_cli.cli import metavars


def labels_command(
    query: Annotated[
        list[str] | None,
        typer.Argument(
            metavar=metavars.QUERY,
            help="Part of a class name or mid, or an ontology node (lists its subtree); none: all classes.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The AudioSet classes matching a query, with their place in the ontology.

    A table on a terminal, tab-separated lines with a header in a pipe."""
    from dymn_cli.audioset.ontology import find_classes

    found = find_classes(" ".join(query) if query else None)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(found)} AudioSet classes", title_justify="left")
        for column in ("index", "mid", "name", "path"):
            table.add_column(column, justify="right" if column == "index" else "left")
        for c in found:
            table.add_row(str(c.index), c.mid, c.name, c.parent_path)
        Console().print(table)
    else:
        lines = ["index\tmid\tname\tpath", *(f"{c.index}\t{c.mid}\t{c.name}\t{c.parent_path}" for c in found)]
        typer.echo("\n".join(lines))
