"""The fixed sets of values of `dymn-tag` options, as Enums: Click checks them while parsing, before
torch is imported, and the help lists them. Tests keep them equal to what the library accepts."""

from __future__ import annotations

import math
import re
from enum import Enum

import typer

from dymn_cli.errors import UsageError


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"
    audacity = "audacity"
    raven = "raven"


class Precision(str, Enum):
    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


class Int8Mode(str, Enum):
    static = "static"
    weights = "weights"


class Aggregate(str, Enum):
    mean = "mean"
    max = "max"


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(value: str) -> str:
    """auto, cpu, cuda or cuda:N; whether that device exists is known only once torch is imported."""
    if not _DEVICE.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not one of auto, cpu, cuda, cuda:N")
    return value


def parse_top(value: str | int | None) -> int | None:
    """--top: a positive number of labels, or 'all' (None)."""
    if value is None or (isinstance(value, str) and value.lower() == "all"):
        return None
    try:
        top = int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither a positive number nor 'all'") from None
    if top < 1:
        raise typer.BadParameter(f"{value!r} is neither a positive number nor 'all'")
    return top


MAX_SECONDS = 1_000_000.0
"""The most seconds an option takes (window, hop, --file-timeout: 11.6 days): more would overflow sample counts."""


def positive_seconds(value: float | None) -> float | None:
    if value is not None and not (value > 0 and math.isfinite(value)):  # (NaN fails the comparison)
        raise typer.BadParameter(f"{value:g} is not a positive number of seconds")
    if value is not None and value > MAX_SECONDS:
        raise typer.BadParameter(f"{value:g} seconds is more than {MAX_SECONDS:.0f}")
    return value


def check_pcm(value: str | None) -> str | None:
    """--pcm FORMAT:RATE:CHANNELS, checked while the command line is parsed (rate and channels bounded)."""
    if value is None:
        return None
    from dymn_cli.audio.pcm import PcmFormat
    from dymn_cli.errors import UsageError

    try:
        PcmFormat.parse(value)
    except UsageError as error:
        raise typer.BadParameter(str(error).removeprefix(f"--pcm {value}: ")) from None
    return value


DEFAULT_MODEL = "dymn10_as"


def check_one_network(model: str | list[str], weights: list | None) -> None:
    """--model and --weights name one network between them: a --model other than the default beside
    --weights is a usage error, never silently ignored."""
    names = ",".join(model) if isinstance(model, list) else model
    if weights and names != DEFAULT_MODEL:
        raise UsageError(f"--model {names} and --weights name two networks: give one (--weights FILE runs that file)")
