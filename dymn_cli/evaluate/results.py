"""Read what `dymn-tag` wrote, in any of its formats, into one table of scores per input.

RESULTS are files or folders: JSON Lines (records only, or after the older header line), a JSON
document, a long CSV or Parquet table (clip labels, a timeline or events), a wide CSV or Parquet table
(one column per class), or a folder of part files (`--output-dir`) of any of these. Each file is read
defensively: anything that is not such an output ends in one line naming the file and the reason.

Scores are kept per input as `{class id: score}`; a class is named by its mid (AudioSet) or `head:NAME`
(a head's class), as the outputs write it. A wide table names its columns only: they are looked up as
AudioSet names, else taken as a head's classes.
"""

from __future__ import annotations

import csv
import json
import math
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dymn_cli.audioset.vocabulary import HEAD_ID_PREFIX, Vocabulary
from dymn_cli.errors import UsageError
from dymn_cli.writers.names import name_from_csv

__all__ = ["InputResult", "ResultSet", "read_results", "RESULT_EXTENSIONS"]

RESULT_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
LONG_COLUMNS = ("path", "rank", "label", "mid", "index", "score")
TIMELINE_COLUMNS = ("path", "start", "end", "label", "mid", "index", "score")
EVENT_COLUMNS = ("path", "start", "end", "label", "mid", "index", "peak", "mean")


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


@dataclass
class ResultSet:
    """Every input of the RESULTS, in the order read; `names` maps each class id seen to its name."""

    inputs: dict[str, InputResult] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def class_names(self) -> dict[str, str]:
        """Every class id seen in the results, with its name."""
        names: dict[str, str] = {}
        for table in {id(r.names): r.names for r in self.inputs.values()}.values():  # (one per file, shared)
            names.update(table)
        return names


class _Bad(Exception):
    """A reason why a results file is not one `dymn-tag` wrote (becomes one line naming the file)."""


def read_results(paths: list[Path]) -> ResultSet:
    """The inputs of every results file and folder in `paths` (`UsageError` naming a bad one)."""
    results = ResultSet()
    for path in paths:
        for file in _result_files(path):
            try:
                for record in _records(file):
                    _add(results, record)
            except _Bad as bad:
                raise UsageError(f"{file}: not a dymn-tag output: {bad}") from None
            except OSError as error:
                raise UsageError(f"{file}: cannot read: {error.strerror or error}") from None
            except UnicodeDecodeError:
                raise UsageError(f"{file}: not a dymn-tag output: not UTF-8 text") from None
            except RecursionError:
                raise UsageError(f"{file}: not a dymn-tag output: nested too deeply") from None
    if not results.inputs:
        named = ", ".join(str(p) for p in paths)
        raise UsageError(f"{named}: no tagged inputs in these results" + (" (every input failed)" if results.failed else ""))
    return results


def _result_files(path: Path) -> list[Path]:
    if path.is_dir():
        try:
            files = sorted(
                p for p in path.iterdir() if p.suffix.lower() in RESULT_EXTENSIONS and not p.name.startswith(".") and p.is_file()
            )
        except OSError as error:
            raise UsageError(f"{path}: cannot list this folder: {error.strerror or error}") from None
        if not files:
            raise UsageError(f"{path}: no results files in this folder (.jsonl, .json, .csv, .parquet)")
        return files
    if not path.exists():
        raise UsageError(f"{path}: no such results file or folder")
    if not path.is_file() and not stat.S_ISFIFO(path.stat().st_mode):
        raise UsageError(f"{path}: not a results file (a device or other special file)")
    if path.suffix.lower() not in RESULT_EXTENSIONS:
        raise UsageError(f"{path}: not a results file: expected .jsonl, .json, .csv or .parquet (what dymn-tag -o writes)")
    return [path]


def _add(results: ResultSet, record: InputResult | tuple[str, str]) -> None:
    if isinstance(record, tuple):  # (path, error): an input that failed
        results.failed.append(record[0])
        return
    if record.path in results.inputs:
        results.duplicates.append(record.path)
        return
    results.inputs[record.path] = record


def _records(file: Path) -> Iterator[InputResult | tuple[str, str]]:
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl(file)
    elif suffix == ".json":
        yield from _json(file)
    elif suffix == ".csv":
        yield from _table(file, _csv_rows(file))
    else:
        yield from _table(file, _parquet_rows(file))


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Bad(f"{what} is not a number ({value!r:.40})")
    try:
        number = float(value)
    except ValueError:
        raise _Bad(f"{what} is not a number ({value!r:.40})") from None
    if not math.isfinite(number):
        raise _Bad(f"{what} is {value!r:.40}, not a finite number")
    return number


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(f"{what} is not a name ({value!r:.40})")
    return value


def _labels(entries: Any, where: str, names: dict[str, str]) -> dict[str, float]:
    """`{mid: score}` of a record's label list (checked in bulk: a `--top all` record holds 527)."""
    if not isinstance(entries, list):
        raise _Bad(f"{where}: 'labels' is not a list")
    try:
        mids = [entry["mid"] for entry in entries]
        values = np.array([entry["score"] for entry in entries], dtype=np.float64)
    except (TypeError, KeyError, ValueError):
        return _labels_one_by_one(entries, where, names)
    if values.dtype != np.float64 or not all(type(mid) is str and mid for mid in mids) or not np.isfinite(values).all():
        return _labels_one_by_one(entries, where, names)
    if any(type(entry["score"]) is bool for entry in entries):
        return _labels_one_by_one(entries, where, names)
    new = set(mids).difference(names)
    if new:
        for mid, entry in zip(mids, entries):
            if mid in new and mid not in names:
                names[mid] = _text(entry.get("label"), f"{where}: a label's name")
    return dict(zip(mids, values.tolist()))


def _labels_one_by_one(entries: list[Any], where: str, names: dict[str, str]) -> dict[str, float]:
    """The slow path, which names the first bad entry."""
    scores: dict[str, float] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise _Bad(f"{where}: a label is not an object")
        mid = _text(entry.get("mid"), f"{where}: a label's mid")
        names.setdefault(mid, _text(entry.get("label"), f"{where}: a label's name"))
        scores[mid] = _number(entry.get("score"), f"{where}: the score of {mid}")
    return scores


def _from_record(record: Any, file: Path, where: str, names: dict[str, str]) -> InputResult | tuple[str, str] | None:
    """One JSON input record; None for a header record (`{"model", "settings"}`, no `path`)."""
    if not isinstance(record, dict):
        raise _Bad(f"{where}: a record is not an object")
    if "path" not in record:
        if "settings" in record or "model" in record:
            return None
        raise _Bad(f"{where}: a record without a 'path'")
    path = _text(record["path"], f"{where}: the path")
    if "error" in record:
        return path, str(record["error"])
    result = InputResult(path, file, _labels(record.get("labels"), where, names))
    if record.get("duration") is not None:
        result.duration = _number(record["duration"], f"{where}: the duration")
    if record.get("windows") is not None:
        if not isinstance(record["windows"], list):
            raise _Bad(f"{where}: 'windows' is not a list")
        result.windows = [_window(w, where, names) for w in record["windows"]]
    if record.get("events") is not None:
        if not isinstance(record["events"], list):
            raise _Bad(f"{where}: 'events' is not a list")
        result.events = [_event(e, where, names) for e in record["events"]]
    result.names = names
    return result


def _window(window: Any, where: str, names: dict[str, str]) -> tuple[float, float, dict[str, float]]:
    if not isinstance(window, dict):
        raise _Bad(f"{where}: a window is not an object")
    start, end = _number(window.get("start"), f"{where}: a window start"), _number(window.get("end"), f"{where}: a window end")
    return start, end, _labels(window.get("labels"), where, names)


def _event(event: Any, where: str, names: dict[str, str]) -> tuple[str, float, float]:
    if not isinstance(event, dict):
        raise _Bad(f"{where}: an event is not an object")
    mid = _text(event.get("mid"), f"{where}: an event's mid")
    names.setdefault(mid, _text(event.get("label"), f"{where}: an event's label"))
    start, end = _number(event.get("start"), f"{where}: an event start"), _number(event.get("end"), f"{where}: an event end")
    if not 0 <= start <= end:
        raise _Bad(f"{where}: an event from {start} to {end}")
    return mid, start, end


def _json_value(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _Bad(f"{where}: not JSON ({error.msg})") from None


def _jsonl(file: Path) -> Iterator[InputResult | tuple[str, str]]:
    names: dict[str, str] = {}  # (one table per file, shared by its records)
    with open(file, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                value = _json_value(line, f"line {number}")
            except _Bad:
                if not line.endswith("\n") and number > 1:
                    continue  # (the half-written last line of a killed run)
                raise
            record = _from_record(value, file, f"line {number}", names)
            if record is not None:
                yield record


def _json(file: Path) -> Iterator[InputResult | tuple[str, str]]:
    document = _json_value(file.read_text(encoding="utf-8"), "the document")
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        raise _Bad("no 'files' list (a dymn-tag JSON document holds {model, settings, files})")
    names: dict[str, str] = {}
    for number, record in enumerate(document["files"], start=1):
        found = _from_record(record, file, f"file record {number}", names)
        if found is not None:
            yield found


def _csv_rows(file: Path) -> tuple[list[str], Iterator[list[str]]]:
    stream = open(file, encoding="utf-8", newline="")  # noqa: SIM115 - closed by the generator below
    reader = csv.reader(stream)
    header = next(reader, None)
    if not header:
        stream.close()
        raise _Bad("empty")

    def rows() -> Iterator[list[str]]:
        with stream:
            yield from reader

    return header, rows()


def _parquet_rows(file: Path) -> tuple[list[str], Iterator[list[Any]]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise UsageError(f"{file}: reading Parquet needs pyarrow: pip install 'dymn-cli[ray]'") from None
    try:
        table = parquet.ParquetFile(file)
        names = list(table.schema_arrow.names)
    except Exception as error:  # (pyarrow raises its own kinds for every sort of damage)
        raise _Bad(f"not a Parquet table ({str(error).splitlines()[0][:80] if str(error) else type(error).__name__})") from None

    def rows() -> Iterator[list[Any]]:
        try:
            for batch in table.iter_batches(batch_size=8192):
                yield from (list(row) for row in zip(*batch.to_pydict().values()))
        except Exception as error:
            raise _Bad(
                f"damaged Parquet data ({str(error).splitlines()[0][:80] if str(error) else type(error).__name__})"
            ) from None

    return names, rows()


def _table(file: Path, header_rows: tuple[list[str], Iterator[list[Any]]]) -> Iterator[InputResult]:
    """Rows of a long or wide table (CSV or Parquet), grouped by input (they come grouped)."""
    header, rows = header_rows
    columns = tuple(header)
    if columns[:2] == ("path", "duration"):
        yield from _wide(file, columns, rows)
        return
    if columns not in (LONG_COLUMNS, TIMELINE_COLUMNS, EVENT_COLUMNS):
        raise _Bad(f"unexpected columns {','.join(columns)[:120]!r} (a dymn-tag table starts path,rank,... or path,duration,...)")
    current: InputResult | None = None
    names: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        where = f"row {number}"
        if len(row) != len(columns):
            raise _Bad(f"{where}: {len(row)} fields, expected {len(columns)}")
        values = dict(zip(columns, row))
        path = name_from_csv(_text(values["path"], f"{where}: the path"))
        if current is None or current.path != path:
            if current is not None:
                yield current
            current = InputResult(path, file, names=names)
            if columns != LONG_COLUMNS:
                current.windows, current.events = ([], None) if columns == TIMELINE_COLUMNS else (None, [])
        mid = _text(values["mid"], f"{where}: the mid")
        current.names.setdefault(mid, _text(values["label"], f"{where}: the label"))
        if columns == LONG_COLUMNS:
            current.scores[mid] = _number(values["score"], f"{where}: the score")
        elif columns == TIMELINE_COLUMNS:
            _add_window_row(current, values, mid, where)
        else:
            start, end = _number(values["start"], f"{where}: the start"), _number(values["end"], f"{where}: the end")
            current.events.append((mid, start, end))  # type: ignore[union-attr]
            current.scores[mid] = max(current.scores.get(mid, 0.0), _number(values["peak"], f"{where}: the peak"))
    if current is not None:
        yield current


def _add_window_row(current: InputResult, values: dict[str, Any], mid: str, where: str) -> None:
    start, end = _number(values["start"], f"{where}: the start"), _number(values["end"], f"{where}: the end")
    score = _number(values["score"], f"{where}: the score")
    windows = current.windows
    assert windows is not None
    current.duration = max(current.duration or 0.0, end)  # (the last window's end is the file's end)
    if not windows or windows[-1][:2] != (start, end):
        windows.append((start, end, {}))
    windows[-1][2][mid] = score


def _wide(file: Path, columns: tuple[str, ...], rows: Iterator[list[Any]]) -> Iterator[InputResult]:
    ids = [_wide_column_id(name) for name in columns[2:]]
    names = {mid: name.removeprefix(HEAD_ID_PREFIX) for mid, name in zip(ids, columns[2:])}
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        where = f"row {number}"
        if len(row) != len(columns):
            raise _Bad(f"{where}: {len(row)} fields, expected {len(columns)}")
        path = name_from_csv(_text(row[0], f"{where}: the path"))
        result = InputResult(path, file, duration=_number(row[1], f"{where}: the duration"))
        # An empty cell is a score under its class's threshold (--threshold, --thresholds): absent, as in a top list.
        result.scores = {
            mid: _number(value, f"{where}: the score of {mid}") for mid, value in zip(ids, row[2:]) if value not in ("", None)
        }
        result.names = names
        yield result


def _wide_column_id(name: str) -> str:
    """A wide table's column is an AudioSet class's name, or a head's class's id (`head:NAME`; older
    tables: its bare name)."""
    if name.startswith(HEAD_ID_PREFIX):
        return name  # (a head's class: its column is its id)
    by_name = _audioset_ids()
    if name.lower() in by_name:
        return by_name[name.lower()]
    if name.endswith(")") and " (" in name:
        inner = name[name.rindex(" (") + 2 : -1]
        if inner.startswith(("/m/", "/t/", HEAD_ID_PREFIX)):
            return inner
    return HEAD_ID_PREFIX + name


def _audioset_ids() -> dict[str, str]:
    return {c.name.lower(): c.id for c in Vocabulary.audioset()}
