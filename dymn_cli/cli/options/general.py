"""Shards, Ray, and the general options (the Scale-out and General panels).

Each option of `dymn_cli.cli.tag.tag` as an `Annotated` type, named after its parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from dymn_cli.cli import metavars, panels
from dymn_cli.errors import UsageError
from dymn_cli.run.shards import parse_shard
from dymn_cli.version import __version__


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"dymn-tag {__version__}")
        raise typer.Exit()


def completion_option(option: str) -> Callable[[bool], None]:
    """The callback of `--show-completion` / `--install-completion` (the command routing bypasses Typer's own)."""

    def callback(value: bool) -> None:
        if value:
            from dymn_cli.cli.completion import run_option

            run_option(option, [])
            raise typer.Exit()

    return callback


def check_shard(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_shard(value)
        except UsageError as error:
            raise typer.BadParameter(str(error).removeprefix(f"--shard {value}: ")) from None
    return value


Shard = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar=metavars.SHARD,
        help="Tag only shard I of N (I counts from 0): a stable split of the inputs for job arrays; join the outputs with dymn-tag merge.",
        callback=check_shard,
        rich_help_panel=panels.SCALE_OUT,
    ),
]

RayTarget = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar=metavars.RAY,
        help="Run on Ray: local (an instance for this run), auto (the cluster this machine is in) or a cluster address. Needs pip install 'dymn-cli\\[ray]'.",
        rich_help_panel=panels.SCALE_OUT,
    ),
]

Actors = Annotated[
    int | None,
    typer.Option(
        "--actors",
        metavar=metavars.N,
        help="With --ray: inference actors, each loading the model once (default: one per GPU, else 1).",
        min=1,
        rich_help_panel=panels.SCALE_OUT,
    ),
]

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display, no summary.", rich_help_panel=panels.GENERAL)]

Version = Annotated[
    bool,
    typer.Option(
        "--version", callback=show_version, is_eager=True, help="Show the version and exit.", rich_help_panel=panels.GENERAL
    ),
]

ShowCompletion = Annotated[
    bool,
    typer.Option(
        "--show-completion",
        callback=completion_option("--show-completion"),
        is_eager=True,
        help="Print the shell completion script: bash, zsh or fish (the login shell's, or name one: dymn-tag --show-completion zsh).",
        rich_help_panel=panels.GENERAL,
    ),
]

InstallCompletion = Annotated[
    bool,
    typer.Option(
        "--install-completion",
        callback=completion_option("--install-completion"),
        is_eager=True,
        help="Install shell completion (the login shell's, or name one: dymn-tag --install-completion fish).",
        rich_help_panel=panels.GENERAL,
    ),
]
