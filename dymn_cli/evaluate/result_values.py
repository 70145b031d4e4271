"""What the readers of results share: one input's results, and the checks of the values in a file."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BadResults", "InputResult", "number", "score", "text"]


@dataclass
class InputResult:
    """What the results say about one input: clip scores, and windows or events when written."""

    path: str
    source: Path
    scores: dict[str, float] = field(default_factory=dict)
    duration: float | None = None
    windows: list[tuple[float, float, dict[str, float]]] | None = None
    events: list[tuple[str, float, float]] | None = None  # (class id, start, end)
    names: dict[str, str] = field(default_factory=dict)  # class id -> name, as the file writes them
    model: str | None = None  # the model that wrote it, when the file says


class BadResults(Exception):
    """A reason why a results file is not one `dymn-tag` wrote (becomes one line naming the file)."""


def number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadResults(f"{what} is not a number ({value!r:.40})")
    try:
        found = float(value)
    except ValueError:
        raise BadResults(f"{what} is not a number ({value!r:.40})") from None
    if not math.isfinite(found):
        raise BadResults(f"{what} is {value!r:.40}, not a finite number")
    return found


def score(value: Any, what: str) -> float:
    """A score: dymn-tag's are probabilities, and one outside 0..1 would rank below a missing score (0)
    or above every real one, so the figures would be wrong without a word."""
    found = number(value, what)
    if not 0.0 <= found <= 1.0:
        raise BadResults(f"{what} is {value!r:.40}, not a score from 0 to 1")
    return found


def text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadResults(f"{what} is not a name ({value!r:.40})")
    return value
