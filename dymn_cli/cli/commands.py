"""The commands of `dymn-tag`, in one place, and which one a command line runs.

Every other part of the command line reads `COMMANDS`: the routing below, the help's Commands panel,
the Typer app that runs them and shell completion. A new command is one line here.

Which command runs (as git, cargo and uv settle it): a first argument that names a command always runs
that command, and a note says so when a file or folder of that name exists here. A path named like a
command is reached as `./NAME`, `NAME/`, `dymn-tag tag NAME`, or after `--` (`dymn-tag -- NAME`).
Anything else is `dymn-tag tag`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from dymn_cli.cli.download import download_command
from dymn_cli.cli.evaluate import evaluate_command
from dymn_cli.cli.export import export_command
from dymn_cli.cli.labels import labels_command
from dymn_cli.cli.merge import merge_command
from dymn_cli.cli.models import models_command
from dymn_cli.cli.search import search_command
from dymn_cli.cli.train import train_command

log = logging.getLogger("dymn_cli")

TAG = "tag"
"""The default command: `dymn-tag PATHS...` is `dymn-tag tag PATHS...`."""

COMMANDS: dict[str, Callable[..., None]] = {
    "models": models_command,
    "download": download_command,
    "labels": labels_command,
    "merge": merge_command,
    "train": train_command,
    "search": search_command,
    "evaluate": evaluate_command,
    "export": export_command,
}
"""The commands besides tagging, in the order `dymn-tag --help` lists them."""

END_OF_OPTIONS = "--"


def command_names() -> list[str]:
    """Every command name, `tag` first."""
    return [TAG, *COMMANDS]


def split_command(args: list[str]) -> tuple[str, list[str]]:
    """The command a command line runs and the arguments that command parses.

    `tag` and the names in `COMMANDS` run their command; a leading `--` makes every argument after it a
    path to tag; anything else is tagging with every argument."""
    if not args:
        return TAG, []
    first = args[0]
    if first == TAG:
        return TAG, args[1:]
    if first in COMMANDS:
        if os.path.lexists(first):
            note = "note: %(name)s runs the %(name)s command; to tag the path %(name)s, write ./%(name)s or dymn-tag tag %(name)s"
            log.info(note, {"name": first})
        return first, args[1:]
    return TAG, args
