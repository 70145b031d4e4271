"""Labelled training audio for a head: a folder with one subfolder per class, or a CSV.

Folder layout: `DATA/<class>/**/<audio files>`; each subfolder's name is a class, every file under it
(walked recursively) an example of that class. A file found under two class folders (a link) is an
example of both. Audio files directly in `DATA` belong to no class and are left out (with a warning).

CSV: rows of `path,label` or `path,label,start,end` (a header row naming these columns is optional;
paths are relative to the CSV's folder unless absolute). `start`/`end` (seconds) label a segment of the
file, empty means the file's start or end. A path on several rows has each row's label: several
labels for the same span make multi-label data.

Which windows an example labels: all windows of a file labelled as a whole; for a segment, the windows
that overlap it by at least half of the shorter of the two (so a short sound labels the windows that
contain it). Windows that no label covers are left out of training (they are neither positives nor
negatives of anything).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dymn_cli.audio.paths import AUDIO_EXTENSIONS
from dymn_cli.errors import UsageError
from dymn_cli.models.head import same_but_for_case
from dymn_cli.run.inputs import walk_audio_files
from dymn_cli.wording import counted

__all__ = ["LabelledFile", "Segment", "TrainingData", "read_training_data", "window_labels"]

log = logging.getLogger("dymn_cli")


@dataclass(frozen=True)
class Segment:
    """Labels for a span of a file; `start`/`end` None: from the start / to the end."""

    labels: frozenset[str]
    start: float | None = None
    end: float | None = None


@dataclass
class LabelledFile:
    path: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def labels(self) -> set[str]:
        return {label for segment in self.segments for label in segment.labels}


@dataclass
class TrainingData:
    """Labelled files and the classes they name (sorted by name)."""

    files: list[LabelledFile]
    classes: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def multi_label(self) -> bool:
        """Whether some span has several labels (else each example has exactly one class)."""
        return any(len(s.labels) > 1 for f in self.files for s in f.segments)

    def files_per_class(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for f in self.files:
            for label in f.labels:
                counts[label] += 1
        return counts


def read_training_data(source: str | os.PathLike[str]) -> TrainingData:
    """The labelled files of a class-folder tree or a CSV; `UsageError` when there is nothing to learn."""
    path = Path(source)
    if path.is_dir():
        data = _from_folders(path)
    elif path.is_file():
        data = _from_csv(path)
    else:
        raise UsageError(f"{path}: no such folder or CSV file")
    if len(data.classes) < 2:
        found = f"only {data.classes[0]!r}" if data.classes else "none"
        raise UsageError(f"{path}: a head needs examples of at least two classes, found {found}")
    same = same_but_for_case(data.classes)
    if same:  # (before the embedding, which may take long)
        raise UsageError(f"{path}: the classes {same} differ only in case: one name to --labels and to SQL; rename one")
    return data


def _from_folders(root: Path) -> TrainingData:
    by_path: dict[str, LabelledFile] = {}
    warnings: list[str] = []
    classes: list[str] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as error:
        raise UsageError(f"{root}: cannot list this folder: {error.strerror or error}") from None
    loose = [e.name for e in entries if not e.is_dir() and os.path.splitext(e.name)[1].lower() in AUDIO_EXTENSIONS]
    if loose:
        warnings.append(f"{root}: {counted(len(loose), 'audio file')} outside the class subfolders left out (e.g. {loose[0]})")
    for entry in entries:
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        files = list(walk_audio_files(entry.path))
        if not files:
            warnings.append(f"{entry.path}: no audio files: class {entry.name!r} left out")
            continue
        classes.append(entry.name)
        for file in files:
            key = os.path.realpath(file)
            labelled = by_path.setdefault(key, LabelledFile(file))
            labelled.segments.append(Segment(frozenset([entry.name])))
    if not classes:
        raise UsageError(f"{root}: no class subfolders with audio files (expected {root}/<class>/<audio files>)")
    # A file under two class folders is one example with both labels.
    files = [LabelledFile(f.path, [Segment(frozenset(f.labels))]) for f in by_path.values()]
    return TrainingData(files=files, classes=classes, warnings=warnings)


def _from_csv(table: Path) -> TrainingData:
    try:
        text = table.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise UsageError(f"{table}: cannot read the CSV: {reason or error}") from None
    rows = list(csv.reader(text.splitlines()))
    columns = ["path", "label", "start", "end"]
    first_data_row = 1
    if rows and [c.strip().lower() for c in rows[0]][:2] == ["path", "label"]:
        columns = [c.strip().lower() for c in rows[0]]
        unknown = [c for c in columns if c not in ("path", "label", "start", "end")]
        if unknown:
            raise UsageError(f"{table}: unknown column {unknown[0]!r}: use path,label and optionally start,end")
        rows = rows[1:]
        first_data_row = 2
    spans: dict[tuple[str, float | None, float | None], set[str]] = {}
    order: list[str] = []
    for number, row in enumerate(rows, start=first_data_row):
        if not row or not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if len(row) > len(columns):
            raise UsageError(f"{table}:{number}: {len(row)} fields, expected at most {len(columns)} ({','.join(columns)})")
        record = dict(zip(columns, (cell.strip() for cell in row)))
        if not record.get("path") or not record.get("label"):
            raise UsageError(f"{table}:{number}: a row needs a path and a label")
        start = _seconds(record.get("start"), table, number, "start")
        end = _seconds(record.get("end"), table, number, "end")
        if start is not None and end is not None and end <= start:
            raise UsageError(f"{table}:{number}: the segment ends ({end}) before it starts ({start})")
        path = record["path"]
        if "://" not in path and not os.path.isabs(path):
            path = os.path.join(table.parent, path)
        if path not in order:
            order.append(path)
        spans.setdefault((path, start, end), set()).add(record["label"])
    if not spans:
        raise UsageError(f"{table}: no labelled rows")
    files = {p: LabelledFile(p) for p in order}
    for (path, start, end), labels in spans.items():
        files[path].segments.append(Segment(frozenset(labels), start, end))
    classes = sorted({label for labels in spans.values() for label in labels})
    return TrainingData(files=list(files.values()), classes=classes)


def _seconds(value: str | None, table: Path, number: int, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"{table}:{number}: {name} must be a number of seconds, got {value!r}") from None
    if not np.isfinite(seconds) or seconds < 0:
        raise UsageError(f"{table}:{number}: {name} must be a number of seconds at least 0, got {value!r}")
    return seconds


def window_labels(
    file: LabelledFile, starts: np.ndarray, ends: np.ndarray, duration: float, classes: Sequence[str]
) -> np.ndarray:
    """`[n_windows, K]` booleans: which classes label each window of `file` (see the module docstring)."""
    column = {name: k for k, name in enumerate(classes)}
    labels = np.zeros((len(starts), len(classes)), dtype=bool)
    window_starts = np.asarray(starts, dtype=np.float64)
    window_ends = np.minimum(np.asarray(ends, dtype=np.float64), duration)  # (the last window's padding holds no sound)
    for segment in file.segments:
        wanted = [column[name] for name in segment.labels if name in column]
        if not wanted:
            continue
        if segment.start is None and segment.end is None:
            covered = np.ones(len(starts), dtype=bool)
        else:
            start = 0.0 if segment.start is None else segment.start
            end = duration if segment.end is None else min(segment.end, duration)
            overlap = np.minimum(window_ends, end) - np.maximum(window_starts, start)
            shorter = np.minimum(window_ends - window_starts, end - start)
            covered = (overlap > 0) & (overlap >= 0.5 * shorter)
        labels[np.ix_(covered, wanted)] = True
    return labels
