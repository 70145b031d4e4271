"""Read ground truth: which labels each file has, and when (for event figures), from any of:

- a CSV of `path,label` rows, optionally `start,end` (seconds; empty: from the file's start / to its
  end), a header row optional, several rows per path for several labels: the layout `dymn-tag train` reads;
  a row with no label (`path,`) is a file with none of the classes (a negative, which counts false positives);
- class folders: `TRUTH/<label>/**/<audio files>`;
- AudioSet's segment CSVs (`eval_segments.csv`: `# ...` comment lines, then `YTID, start_seconds,
  end_seconds, "mid,mid,..."`), the files matched by the YouTube ID in their name;
- Raven selection tables (tab-separated, `Begin Time (s)`, `End Time (s)` and a label column:
  `Annotation`, `Label`, `Species`, `Class` or `Category`), for the file named in `Begin Path`/`Begin File`,
  else the one named like the table (`NAME.Table.1.selections.txt`);
- Audacity label files (`start<TAB>end<TAB>label` lines), for the file named like them (`NAME.labels.txt`, `NAME.txt`);
  an empty one is a file with none of the classes;
- a folder of Raven or Audacity files.

Each file is read defensively: one line naming the file (and the line) and the reason, never a traceback.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dymn_cli.errors import UsageError
from dymn_cli.run.inputs import walk_audio_files
from dymn_cli.text_lists import read_bounded
from dymn_cli.wording import counted

__all__ = ["PATH", "STEM", "YOUTUBE_ID", "Span", "Truth", "read_truth"]

PATH, STEM, YOUTUBE_ID = "path", "stem", "youtube id"
RAVEN_LABEL_COLUMNS = ("annotation", "label", "species", "class", "category", "sound type")
MAX_BYTES = 512 * 1024 * 1024  # (an annotation file larger than this is not one)
# Words of a header row other than path,label: such a row, read as data, made a label 'label' or 'labels'.
HEADER_WORDS = {"file", "filename", "file_name", "filepath", "fname", "name", "audio", "labels", "class", "classes", "tag"}
HEADER_WORDS |= {"tags", "category", "onset", "offset", "start_time", "end_time", "begin", "path", "label", "start", "end"}
SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "bars"}
RESULTS_HINT = "if it is what dymn-tag wrote, give it as RESULTS (before --truth), and the ground truth with --truth"
SEGMENT_ROW = re.compile(r"[A-Za-z0-9_-]{11}\s*,\s*[0-9.]+\s*,\s*[0-9.]+\s*,")


@dataclass(frozen=True)
class Span:
    """A label of a file, over all of it (`start`/`end` None) or from `start` to `end` seconds."""

    label: str
    start: float | None = None
    end: float | None = None

    @property
    def timed(self) -> bool:
        return self.start is not None or self.end is not None


@dataclass
class Truth:
    """Labelled files, each named by a key of kind `PATH`, `STEM` (a file name without its extension)
    or `YOUTUBE_ID`, in the order read; `sources` the files read."""

    files: dict[str, list[Span]] = field(default_factory=dict)
    kind: str = PATH
    sources: list[Path] = field(default_factory=list)

    def add(self, key: str, span: Span | None) -> None:
        """A label of the file `key`; None only marks the file (a negative: none of the classes, unless
        another row labels it)."""
        self.files.setdefault(key, [])
        if span is not None and span not in self.files[key]:
            self.files[key].append(span)

    def update(self, other: Truth) -> None:
        """Add `other`'s files and sources: each file with its labels, a file without any a negative."""
        self.sources += other.sources
        for key, spans in other.files.items():
            self.add(key, None)
            for span in spans:
                self.add(key, span)

    @property
    def timed(self) -> bool:
        return any(span.timed for spans in self.files.values() for span in spans)

    def labels(self) -> list[str]:
        return list(dict.fromkeys(span.label for spans in self.files.values() for span in spans))


def read_truth(paths: list[Path]) -> Truth:
    """The truth in `paths` (files or folders of one kind); `UsageError` naming a bad file."""
    truth = Truth()
    kinds = set()
    for path in paths:
        part = _read_one(path)
        kinds.add(part.kind)
        truth.kind = part.kind
        truth.update(part)
    if len(kinds) > 1:
        raise UsageError(
            f"{', '.join(map(str, paths))}: truth of different kinds (paths, file names, YouTube IDs): give one kind"
        )
    if not truth.labels():
        named = ", ".join(map(str, paths))
        if truth.files:  # (rows `path,`: negatives count the false positives of classes other files have)
            raise UsageError(
                f"{named}: only files with no label ({counted(len(truth.files), 'negative')}): no class to score; "
                "label the files that have a class"
            )
        raise UsageError(f"{named}: no labelled files in this truth")
    return truth


def _read_one(path: Path) -> Truth:
    if path.is_dir():
        return _from_folder(path)
    if not path.exists():
        raise UsageError(f"{path}: no such truth file or folder")
    if not path.is_file() and not stat.S_ISFIFO(path.stat().st_mode):
        raise UsageError(f"{path}: not a truth file (a device or other special file)")
    text = _read_text(path)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "\t" in first and "begin time" in first.lower():
        return _from_raven(path, text)
    if first.startswith("#") or first.replace(" ", "").lower().startswith("ytid,"):
        if "ytid" in text[:2000].lower() or re.match(r"#\s*segments", first, re.IGNORECASE):
            return _from_segments(path, text)
    if SEGMENT_ROW.match(first):  # (segment rows without AudioSet's comment lines)
        return _from_segments(path, text)
    if "\t" in first and path.suffix.lower() == ".txt":
        return _from_audacity(path, text)
    if path.suffix.lower() == ".txt" and not text.strip():  # (an empty label track: a file with no events)
        negative = Truth(kind=STEM, sources=[path])
        negative.add(_table_stem(path), None)
        return negative
    if first.lstrip().startswith(("{", "[")):
        raise UsageError(f"{path}: JSON, not ground truth: {RESULTS_HINT}")
    return _from_csv(path, text)


def _read_text(path: Path) -> str:
    """The file's text, read up to `MAX_BYTES` (a device such as /dev/zero never ends)."""
    data = read_bounded(os.fspath(path), what="truth file", max_total=MAX_BYTES, wait=10.0)  # (a FIFO: 10 s at most)
    if b"\0" in data:
        if data.startswith(b"PAR1"):
            raise UsageError(f"{path}: Parquet, not ground truth: {RESULTS_HINT}")
        raise UsageError(f"{path}: not a truth file: binary data")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a truth file: not UTF-8 text") from None


def _seconds(value: str | None, where: str, name: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"{where}: {name} must be a number of seconds, got {value.strip()[:40]!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(f"{where}: {name} must be a number of seconds at least 0, got {value.strip()[:40]!r}")
    return seconds


def _span(label: str, start: float | None, end: float | None, where: str) -> Span:
    if start is not None and end is not None and end < start:
        raise UsageError(f"{where}: the span ends ({end}) before it starts ({start})")
    return Span(label, start, end)


def _csv_rows(path: Path, text: str, **options: object) -> list[list[str]]:
    try:
        # (not text.splitlines(): a quoted field may hold a line break, as a file name may)
        return list(csv.reader(io.StringIO(text, newline=""), **options))  # type: ignore[arg-type]
    except csv.Error as error:
        raise UsageError(f"{path}: not a truth CSV: {error}") from None


def _from_csv(path: Path, text: str) -> Truth:
    rows = _csv_rows(path, text)
    columns, first = ["path", "label", "start", "end"], 1
    if rows and [c.strip().lower() for c in rows[0]][:2] == ["path", "label"]:
        columns = [c.strip().lower() for c in rows[0]]
        unknown = [c for c in columns if c not in ("path", "label", "start", "end")]
        if unknown:
            raise UsageError(f"{path}: unknown column {unknown[0][:40]!r}: a truth CSV has path,label and optionally start,end")
        rows, first = rows[1:], 2
    elif rows and len(rows[0]) > 4 and rows[0][0].strip().lower() == "path":
        raise UsageError(f"{path}:1: a table of {len(rows[0])} columns, not ground truth: {RESULTS_HINT}")
    elif rows and {c.strip().lower() for c in rows[0]} & HEADER_WORDS:
        raise UsageError(
            f"{path}:1: the header {','.join(rows[0])[:80]!r} is not path,label[,start,end] "
            "(the layout dymn-tag train reads): name the columns so, or leave the header out"
        )
    truth = Truth(kind=PATH, sources=[path])
    for number, row in enumerate(rows, start=first):
        if not row or not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(row) == 1 and (separator := next((name for c, name in SEPARATORS.items() if c in row[0]), None)):
            raise UsageError(
                f"{where}: fields separated by {separator}: a truth CSV separates path,label[,start,end] with commas"
            )
        if len(row) > len(columns) or len(row) < 2:
            raise UsageError(f"{where}: {counted(len(row), 'field')}, expected path,label[,start,end] (is this a truth CSV?)")
        record = dict(zip(columns, (cell.strip() for cell in row)))
        if not record.get("path"):
            raise UsageError(f"{where}: a row needs a path")
        start, end = _seconds(record.get("start"), where, "start"), _seconds(record.get("end"), where, "end")
        # (an empty label: a file with none of the classes, which counts its false positives)
        truth.add(record["path"], _span(record["label"], start, end, where) if record.get("label") else None)
    return truth


def _from_folder(root: Path) -> Truth:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as error:
        raise UsageError(f"{root}: cannot list this folder: {error.strerror or error}") from None
    tables = [Path(e.path) for e in entries if e.is_file() and e.name.lower().endswith(".txt")]
    folders = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    if tables and not folders:
        truth = Truth(kind=STEM, sources=[])
        for table in tables:
            part = _read_one(table)
            if part.kind != STEM:
                raise UsageError(f"{table}: not a Raven selection table or Audacity label file (in a folder of them)")
            truth.update(part)
        return truth
    truth = Truth(kind=PATH, sources=[root])
    for entry in folders:
        for file in walk_audio_files(entry.path):
            truth.add(file, Span(entry.name))
    if not truth.files:
        raise UsageError(
            f"{root}: no class subfolders with audio files (expected {root}/<label>/<audio files>) and no label files"
        )
    return truth


def _from_segments(path: Path, text: str) -> Truth:
    truth = Truth(kind=YOUTUBE_ID, sources=[path])
    for number, row in enumerate(_csv_rows(path, text, skipinitialspace=True), start=1):
        if not row or not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if row[0].strip().upper() == "YTID":
            continue
        where = f"{path}:{number}"
        if len(row) != 4:
            raise UsageError(f"{where}: {len(row)} fields, expected YTID, start_seconds, end_seconds, positive_labels")
        ytid = row[0].strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]{11}", ytid):
            raise UsageError(f"{where}: {ytid[:40]!r} is not a YouTube ID (11 letters, digits, - or _)")
        for value, name in ((row[1], "start_seconds"), (row[2], "end_seconds")):
            _seconds(value, where, name)  # (checked only: the clip's place in its video, not a span of the file)
        labels = [label.strip() for label in row[3].split(",") if label.strip()]
        if not labels:
            raise UsageError(f"{where}: no positive_labels")
        for label in labels:
            truth.add(ytid, Span(label))
    return truth


def _table_stem(path: Path) -> str:
    name = path.name
    for ending in (r"\.Table\.\d+\.selections\.txt$", r"\.selections\.txt$", r"\.labels\.txt$", r"\.txt$"):
        if re.search(ending, name, re.IGNORECASE):
            return re.sub(ending, "", name, flags=re.IGNORECASE)
    return path.stem


def _from_raven(path: Path, text: str) -> Truth:
    rows = _csv_rows(path, text, delimiter="\t")
    header = [c.strip().lower() for c in rows[0]]
    column = {name: n for n, name in enumerate(header)}
    try:
        begin, end = column["begin time (s)"], column["end time (s)"]
    except KeyError:
        raise UsageError(f"{path}: a Raven selection table needs 'Begin Time (s)' and 'End Time (s)' columns") from None
    label_column = next((column[name] for name in RAVEN_LABEL_COLUMNS if name in column), None)
    if label_column is None:
        raise UsageError(
            f"{path}: no label column in this Raven table (one of: {', '.join(c.title() for c in RAVEN_LABEL_COLUMNS)})"
        )
    file_column = column.get("begin path", column.get("begin file"))
    truth = Truth(kind=STEM, sources=[path])
    for number, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        where = f"{path}:{number}"
        if len(row) < len(header):
            raise UsageError(f"{where}: {len(row)} fields, expected {len(header)} (as the header)")
        label = row[label_column].strip()
        if not label:
            raise UsageError(f"{where}: a selection without a label")
        start, stop = _seconds(row[begin], where, "Begin Time (s)"), _seconds(row[end], where, "End Time (s)")
        if start is None or stop is None:
            raise UsageError(f"{where}: a selection needs a begin and an end time")
        key = (
            Path(row[file_column].strip().replace("\\", "/")).name
            if file_column is not None and row[file_column].strip()
            else None
        )
        truth.add(key or _table_stem(path), _span(label, start, stop, where))
    return truth


def _from_audacity(path: Path, text: str) -> Truth:
    truth = Truth(kind=STEM, sources=[path])
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("\\"):
            continue  # (a spectral selection's frequency line starts with a backslash)
        where = f"{path}:{number}"
        fields = line.split("\t")
        if len(fields) < 2:
            raise UsageError(f"{where}: an Audacity label line is start<TAB>end<TAB>label")
        start, end = _seconds(fields[0], where, "start"), _seconds(fields[1], where, "end")
        label = fields[2].strip() if len(fields) > 2 else ""
        if start is None or end is None or not label:
            raise UsageError(f"{where}: an Audacity label line is start<TAB>end<TAB>label, with a label")
        truth.add(_table_stem(path), _span(label, start, end, where))
    return truth
