"""The 527 AudioSet classes in the models' output order, shipped with the package."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class AudioSetClass:
    index: int
    mid: str
    name: str


@lru_cache(maxsize=1)
def audioset_classes() -> tuple[AudioSetClass, ...]:
    """All classes, `classes[i]` being output `i` of every model."""
    text = resources.files("dymn_cli.audioset").joinpath("data/class_labels_indices.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return tuple(AudioSetClass(int(r["index"]), r["mid"], r["display_name"]) for r in rows)
