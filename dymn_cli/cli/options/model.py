"""The model and where it runs (the Model and Compute panels).

Each option of `dymn_cli.cli.tag.tag` as an `Annotated` type, named after its parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dymn_cli.cli import metavars, panels
from dymn_cli.cli.choices import Precision, check_device

Model = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        metavar=metavars.MODEL,
        help="Published model (see dymn-tag models), or several joined by commas for an ensemble.",
        rich_help_panel=panels.MODEL,
    ),
]

Weights = Annotated[
    list[Path] | None,
    typer.Option(
        "--weights",
        "-w",
        metavar=metavars.FILE,
        help="Local checkpoint file instead of --model (repeat for an ensemble), or one graph from dymn-tag export (.onnx: runs in onnxruntime, without torch); needs no network.",
        show_default=False,
        rich_help_panel=panels.MODEL,
    ),
]

Sha256 = Annotated[
    str | None,
    typer.Option("--sha256", metavar=metavars.HEX, help="Expected SHA-256 of the checkpoint.", rich_help_panel=panels.MODEL),
]

Head = Annotated[
    Path | None,
    typer.Option(
        "--head",
        metavar=metavars.FILE,
        help="Score the classes of this head (from dymn-tag train) instead of AudioSet's.",
        rich_help_panel=panels.MODEL,
    ),
]

WithAudioset = Annotated[
    bool,
    typer.Option(
        "--with-audioset", help="With --head: the AudioSet classes too, before the head's.", rich_help_panel=panels.MODEL
    ),
]

Device = Annotated[
    str,
    typer.Option(
        "--device",
        "-d",
        metavar=metavars.DEVICE,
        help="Where the network runs (auto: CUDA when there is one).",
        callback=check_device,
        rich_help_panel=panels.COMPUTE,
    ),
]

Precision = Annotated[
    Precision,
    typer.Option(
        "--precision",
        case_sensitive=False,
        metavar=metavars.PRECISION,
        help="auto (float16 on CUDA, float32 on the CPU), float32, float16 or bfloat16.",
        rich_help_panel=panels.COMPUTE,
    ),
]

BatchSize = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        "-b",
        metavar=metavars.N,
        help="Windows per network call (default: 8 per CPU lane, i.e. per torch thread; 16 on CUDA).",
        min=1,
        show_default=False,
        rich_help_panel=panels.COMPUTE,
    ),
]

Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-j",
        metavar=metavars.N,
        help="Decoding processes (default: from the CPU count; 0: decode in this process).",
        min=0,
        rich_help_panel=panels.COMPUTE,
    ),
]

Compile = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="Compile the network with torch.compile (minutes of compiling first, again at each new batch size; on the CPU no faster).",
        rich_help_panel=panels.COMPUTE,
    ),
]
