"""The fixed sets of values of `dymn-tag` options, as Enums: Click checks them while parsing, before
torch is imported, and the help lists them. Tests keep them equal to what the library accepts."""

from __future__ import annotations

import math
import re
from enum import Enum

import typer


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


def positive_seconds(value: float | None) -> float | None:
    if value is not None and not (value > 0 and math.isfinite(value)):  # (NaN fails the comparison)
        raise typer.BadParameter(f"{value:g} is not a positive number of seconds")
    return value
