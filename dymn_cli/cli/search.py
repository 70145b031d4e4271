"""`dymn-tag search QUERY... --index EMB.npz`: the entries of an embeddings index most like each query."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dymn_cli.cli import metavars
from dymn_cli.cli.choices import check_device, positive_seconds
from dymn_cli.cli.train import local_tagger
from dymn_cli.errors import UsageError

log = logging.getLogger("dymn_cli")


def search_command(
    queries: Annotated[
        list[str],
        typer.Argument(metavar=metavars.PATHS, help="Audio files (or folders) to find look-alikes of.", show_default=False),
    ],
    index: Annotated[
        Path,
        typer.Option("--index", metavar=metavars.FILE, help="Embeddings archive to search (.npz from --embeddings, or merged)."),
    ],
    top: Annotated[int, typer.Option("--top", "-k", metavar=metavars.K, help="How many hits per query.", min=1)] = 10,
    clips: Annotated[bool, typer.Option("--clips", help="Search the clips even when the index has window embeddings.")] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            metavar=metavars.MODEL,
            help="The network that wrote the index (default: the one it records; another is refused).",
            show_default=False,
        ),
    ] = None,
    weights: Annotated[
        list[Path] | None,
        typer.Option("--weights", "-w", metavar=metavars.FILE, help="Local checkpoint file instead of --model."),
    ] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", metavar=metavars.HEX, help="Expected SHA-256 of the checkpoint.")
    ] = None,
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            metavar=metavars.SECONDS,
            callback=positive_seconds,
            help="Query window in seconds (default: the index's windows, else 10).",
            show_default=False,
        ),
    ] = None,
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
    format: Annotated[
        str | None,
        typer.Option(
            "-f", "--format", metavar=metavars.FORMAT, help="table or jsonl (default: table on a terminal, jsonl in a pipe)."
        ),
    ] = None,
) -> None:
    """The entries of an embeddings index most similar to each query (cosine), best first."""
    from dymn_cli.run.inputs import expand_inputs
    from dymn_cli.transfer.search_network import query_network
    from dymn_cli.transfer.similarity import load_index, search_audio

    if format not in (None, "table", "jsonl"):
        raise UsageError(f"unknown format {format!r}: use table or jsonl")
    problems: list[Any] = []
    inputs = [i.path for i in expand_inputs(queries, problems=problems)]
    for problem in problems:
        log.error("%s: %s", problem.path, problem.reason)
    if not inputs:
        raise UsageError("no query audio")
    loaded = load_index(index, windows=False if clips else None)
    network = query_network(loaded, index, model=model, weights=weights)
    tagger = local_tagger(network.model, network.weights, device=device, sha256=sha256, progress=sys.stderr.isatty())
    found = search_audio(tagger, [sys.stdin.buffer if q == "-" else q for q in inputs], loaded, top=top, window=window)
    failed = [f for f in found if f.error is not None]
    for failure in failed:
        log.error("%s", failure.error or "")
    if (format or ("table" if sys.stdout.isatty() else "jsonl")) == "jsonl":
        for query, result in zip(inputs, found):
            for hit in result.hits:
                typer.echo(json.dumps({"query": query, **hit.as_dict()}, ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        for query, result in zip(inputs, found):
            if result.error is not None:
                continue
            table = Table(title=query, title_justify="left")
            for column in ("rank", "path", *(("start", "end") if loaded.windows else ()), "similarity"):
                table.add_column(column, justify="left" if column == "path" else "right")
            for hit in result.hits:
                times = (f"{hit.start:.2f}", f"{hit.end:.2f}") if hit.start is not None else ()
                table.add_row(str(hit.rank), hit.path, *times, f"{hit.similarity:.4f}")
            console.print(table)
    raise typer.Exit(1 if failed or problems else 0)
