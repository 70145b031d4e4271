"""The inputs' options of `dymn-tag [PATHS]`: what to read, and how (the Input panel).

Each option of `dymn_cli.cli.tag.tag` as an `Annotated` type, named after its parameter."""

from __future__ import annotations

from typing import Annotated

import typer

from dymn_cli.cli import metavars, panels
from dymn_cli.cli.choices import check_pcm, positive_seconds

Paths = Annotated[
    list[str] | None,
    typer.Argument(
        metavar=metavars.PATHS,
        help="Audio files, folders (walked), or - for audio on stdin. A path named like a command: ./NAME, NAME/, or after tag or --.",
        show_default=False,
    ),
]

FilesFrom = Annotated[
    str | None,
    typer.Option(
        "--files-from",
        "-T",
        metavar=metavars.FILE,
        help="Read input paths, one a line, from this file or - (stdin).",
        rich_help_panel=panels.INPUT,
    ),
]

Recursive = Annotated[
    bool, typer.Option("--recursive/--no-recursive", help="Walk folders recursively.", rich_help_panel=panels.INPUT)
]

FileTimeout = Annotated[
    float | None,
    typer.Option(
        "--file-timeout",
        metavar=metavars.SECONDS,
        help="Fail an input that takes longer than this to decode and tag ('timed out after N s') and go on (default: no limit).",
        callback=positive_seconds,
        show_default=False,
        rich_help_panel=panels.INPUT,
    ),
]

Live = Annotated[
    bool,
    typer.Option(
        "--live",
        help="The inputs are live streams (-, a FIFO or device, a URL such as http://, rtsp://, srt://, udp://), tagged as they arrive: a JSON line per window and per event, at once (default hop 1 s).",
        rich_help_panel=panels.INPUT,
    ),
]

Pcm = Annotated[
    str | None,
    typer.Option(
        "--pcm",
        metavar=metavars.PCM,
        callback=check_pcm,
        help="With --live: the streams are headerless PCM, e.g. s16le:32000:1 (s16le, s24le, s32le, f32le, f64le, u8, s8; be for big-endian).",
        rich_help_panel=panels.INPUT,
    ),
]

Reconnect = Annotated[
    float,
    typer.Option(
        "--reconnect",
        metavar=metavars.SECONDS,
        help="With --live: reopen a network stream that drops, for up to this long (0: never).",
        min=0.0,
        rich_help_panel=panels.INPUT,
    ),
]
