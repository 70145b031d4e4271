"""Per-class thresholds (`--thresholds FILE`): a CSV with the header `label,mid,threshold`, one row per
class, as `dymn-tag evaluate --save-thresholds` writes it. A row names its class by `mid` when it has
one (an AudioSet mid, or `head:<name>` for a head's class), else by `label`; classes without a row
keep `--threshold`.

    thresholds = load_thresholds("best_f1.csv", Vocabulary.audioset())
    thresholds.levels(527, default=0.5)       # numpy [527]: each class's threshold, 0.5 where unlisted

Read defensively, torch-free, while the command line is parsed: anything wrong with the file is one
`UsageError` naming the file and the reason (exit 2), before any model loads.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dymn_cli.audioset.vocabulary import LabelClass, Vocabulary
from dymn_cli.errors import UsageError
from dymn_cli.text_lists import read_bounded

__all__ = ["MAX_THRESHOLDS_BYTES", "ClassThresholds", "load_thresholds", "parse_thresholds"]

MAX_THRESHOLDS_BYTES = 4 << 20
SLOW_FILE_WAIT = 10.0  # seconds a thresholds file from a FIFO or pipe may take to come
"""The largest thresholds file read: 4 MiB is some 50,000 rows, far beyond 527 classes and any head's."""
COLUMNS = ("label", "mid", "threshold")


@dataclass(frozen=True)
class ClassThresholds:
    """Thresholds for some classes of one vocabulary: `(class index, threshold)` pairs, by index."""

    pairs: tuple[tuple[int, float], ...]
    source: str = ""
    """Where they came from: the file's name and the first 12 hex digits of its SHA-256."""

    def levels(self, n_classes: int, *, default: float | None) -> np.ndarray:
        """Each class's threshold, `[n_classes]`; `default` for classes without one (None: no cut, -inf)."""
        levels = np.full(n_classes, -np.inf if default is None else float(default), dtype=np.float64)
        for index, threshold in self.pairs:
            if index < n_classes:
                levels[index] = threshold
        return levels

    def as_dict(self, vocabulary: Vocabulary) -> dict[str, float]:
        return {vocabulary[index].name: threshold for index, threshold in self.pairs}


def load_thresholds(path: str | os.PathLike[str], vocabulary: Vocabulary) -> ClassThresholds:
    """The thresholds file at `path`, matched against `vocabulary`; UsageError `"<path>: <reason>"`."""
    data = _read_bounded(Path(path))
    digest = hashlib.sha256(data).hexdigest()[:12]
    return parse_thresholds(data, vocabulary, name=str(path), source=f"{Path(path).name}@{digest}")


def parse_thresholds(data: bytes, vocabulary: Vocabulary, *, name: str, source: str = "") -> ClassThresholds:
    """The thresholds in the bytes of a thresholds file (`name` says which in errors)."""
    text = _decoded(data, name)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as error:
        raise UsageError(f"{name}: not a readable CSV file ({error})") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]  # (blank lines)
    if not rows:
        raise UsageError(f"{name}: empty; expected a CSV with the header {','.join(COLUMNS)}")
    columns = _header(rows[0], name)
    matcher = _Matcher(vocabulary)
    found: dict[int, tuple[float, int]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise UsageError(f"{name}: line {number} has {len(row)} fields, the header {len(rows[0])}")
        cells = {column: row[position].strip() for column, position in columns.items()}
        where = f"{name}: line {number}"
        threshold = _threshold(cells["threshold"], where)
        index = matcher.match(cells.get("label", ""), cells.get("mid", ""), where)
        if index in found:
            raise UsageError(f"{where}: {vocabulary[index].name!r} again (first on line {found[index][1]})")
        found[index] = (threshold, number)
    if not found:
        raise UsageError(f"{name}: a header but no thresholds")
    return ClassThresholds(tuple(sorted((index, value) for index, (value, _) in found.items())), source=source)


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, bounded in size and in the time a FIFO or pipe may take (`dymn_cli.text_lists`)."""
    return read_bounded(os.fspath(path), what="thresholds file", max_total=MAX_THRESHOLDS_BYTES, wait=SLOW_FILE_WAIT)


def _decoded(data: bytes, name: str) -> str:
    nul = data.find(b"\x00")
    if nul >= 0:
        raise UsageError(f"{name}: binary data (a NUL byte at offset {nul}), not a CSV file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(f"{name}: not UTF-8 text (byte {error.start}); expected a CSV file") from None


def _header(row: list[str], name: str) -> dict[str, int]:
    """Column name -> position; `threshold` and `label` or `mid` are needed, other columns are ignored."""
    names = [cell.strip().lower() for cell in row]
    positions = {column: names.index(column) for column in COLUMNS if column in names}
    repeated = sorted({n for n in names if n in COLUMNS and names.count(n) > 1})
    if repeated:
        raise UsageError(f"{name}: the header has {', '.join(repeated)} twice")
    if "threshold" not in positions or not ({"label", "mid"} & positions.keys()):
        shown = ",".join(cell.strip() for cell in row)[:80]
        raise UsageError(f"{name}: the header is {shown!r}; expected {','.join(COLUMNS)} (label or mid, and threshold)")
    return positions


def _threshold(cell: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise UsageError(f"{where}: threshold {cell[:40]!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(f"{where}: threshold {cell[:40]} is not between 0 and 1")
    return value


class _Matcher:
    """A row's class: by mid (id) when it has one, else by label, exactly, else case-insensitively."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.by_id: Mapping[str, LabelClass] = {c.id: c for c in vocabulary}
        self.by_name: dict[str, list[LabelClass]] = {}
        self.by_folded: dict[str, list[LabelClass]] = {}
        for c in vocabulary:
            self.by_name.setdefault(c.name, []).append(c)
            self.by_folded.setdefault(c.name.casefold(), []).append(c)

    def match(self, label: str, mid: str, where: str) -> int:
        if mid:
            found = self.by_id.get(mid)
            if found is None:
                raise UsageError(f"{where}: mid {mid[:60]!r} is not one of this run's classes{self._hint(mid, self.by_id)}")
            if label and label != found.name and label.casefold() != found.name.casefold():
                raise UsageError(f"{where}: mid {mid} is {found.name!r}, not {label[:60]!r}")
            return found.index
        if not label:
            raise UsageError(f"{where}: neither a label nor a mid")
        candidates = self.by_name.get(label) or self.by_folded.get(label.casefold()) or []
        if len(candidates) == 1:
            return candidates[0].index
        if candidates:
            raise UsageError(f"{where}: {label!r} names {len(candidates)} classes; give its mid")
        raise UsageError(f"{where}: {label[:60]!r} is not one of this run's classes{self._hint(label, self.by_name)}")

    @staticmethod
    def _hint(term: str, known: Mapping[str, object]) -> str:
        close = difflib.get_close_matches(term, list(known), n=1, cutoff=0.6)
        return f" (did you mean {close[0]!r}?)" if close else ""
