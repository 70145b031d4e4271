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

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dymn_cli.errors import UsageError
from dymn_cli.evaluate.result_tables import table_records
from dymn_cli.evaluate.result_values import BadResults, InputResult, number, score, text

__all__ = ["InputResult", "ResultSet", "as_paths", "read_results", "RESULT_EXTENSIONS"]

RESULT_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")


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


LIVE_RECORDS = ("window", "event", "gap", "end")
"""The `type`s of the JSON Lines records a live run writes (`dymn_cli.writers.live`)."""


def read_results(paths: list[Path]) -> ResultSet:
    """The inputs of every results file and folder in `paths` (`UsageError` naming a bad one)."""
    results = ResultSet()
    for path in paths:
        for file in _result_files(path):
            try:
                for record in _records(file):
                    _add(results, record)
            except BadResults as bad:
                raise UsageError(f"{file}: not a dymn-tag output: {bad}") from None
            except OSError as error:
                raise UsageError(f"{file}: cannot read: {error.strerror or error}") from None
            except UnicodeDecodeError:
                raise UsageError(f"{file}: not a dymn-tag output: not UTF-8 text") from None
            except RecursionError:
                raise UsageError(f"{file}: not a dymn-tag output: nested too deeply") from None
    _check_one_model(results)
    if not results.inputs:
        named = ", ".join(str(p) for p in paths)
        raise UsageError(f"{named}: no tagged inputs in these results" + (" (every input failed)" if results.failed else ""))
    return results


def as_paths(paths: str | os.PathLike[str] | list[str | os.PathLike[str]] | list[Path], what: str) -> list[Path]:
    """The API takes one path or a list of them, as text or `Path`; `UsageError` for none at all."""
    found = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not found:
        raise UsageError(f"no {what} given")
    return found


def _check_one_model(results: ResultSet) -> None:
    """Scores of two models are not one ranking: pooled, they would give a figure of neither."""
    models: dict[str, Path] = {}
    for result in results.inputs.values():
        if result.model is not None and result.model not in models:
            models[result.model] = result.source
    if len(models) > 1:
        (first, one), (second, other) = list(models.items())[:2]
        raise UsageError(
            f"{other}: results of another model ({second!r}, and {first!r} in {one}): evaluate one model's results at a time"
        )


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
    else:
        yield from table_records(file)


def _labels(entries: Any, where: str, names: dict[str, str]) -> dict[str, float]:
    """`{mid: score}` of a record's label list (checked in bulk: a `--top all` record holds 527)."""
    if not isinstance(entries, list):
        raise BadResults(f"{where}: 'labels' is not a list")
    try:
        mids = [entry["mid"] for entry in entries]
        values = np.array([entry["score"] for entry in entries], dtype=np.float64)
    except (TypeError, KeyError, ValueError):
        return _labels_one_by_one(entries, where, names)
    if values.dtype != np.float64 or not all(type(mid) is str and mid for mid in mids):
        return _labels_one_by_one(entries, where, names)
    if not (np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()):
        return _labels_one_by_one(entries, where, names)
    if any(type(entry["score"]) is bool for entry in entries):
        return _labels_one_by_one(entries, where, names)
    new = set(mids).difference(names)
    if new:
        for mid, entry in zip(mids, entries):
            if mid in new and mid not in names:
                names[mid] = text(entry.get("label"), f"{where}: a label's name")
    return dict(zip(mids, values.tolist()))


def _labels_one_by_one(entries: list[Any], where: str, names: dict[str, str]) -> dict[str, float]:
    """The slow path, which names the first bad entry."""
    scores: dict[str, float] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise BadResults(f"{where}: a label is not an object")
        mid = text(entry.get("mid"), f"{where}: a label's mid")
        names.setdefault(mid, text(entry.get("label"), f"{where}: a label's name"))
        scores[mid] = score(entry.get("score"), f"{where}: the score of {mid}")
    return scores


def _from_record(
    record: Any, file: Path, where: str, names: dict[str, str], model: str | None = None
) -> InputResult | tuple[str, str] | None:
    """One JSON input record (`model`: the file's, when its header says); None for a header record
    (`{"model", "settings"}`, no `path`)."""
    if not isinstance(record, dict):
        raise BadResults(f"{where}: a record is not an object")
    if "path" not in record:
        if "settings" in record or "model" in record:
            return None
        if record.get("type") in LIVE_RECORDS and "source" in record:
            raise UsageError(
                f"{file}: the records of a live stream ({record['type']}s of {str(record['source'])[:80]!r}), not results "
                "per input: to evaluate, tag the recordings as files (with --timeline or --events for timed truth)"
            )
        raise BadResults(f"{where}: a record without a 'path'")
    path = text(record["path"], f"{where}: the path")
    if "error" in record:
        return path, str(record["error"])
    result = InputResult(path, file, _labels(record.get("labels"), where, names))
    result.model = record["model"] if isinstance(record.get("model"), str) else model
    if record.get("duration") is not None:
        result.duration = number(record["duration"], f"{where}: the duration")
    if record.get("windows") is not None:
        if not isinstance(record["windows"], list):
            raise BadResults(f"{where}: 'windows' is not a list")
        result.windows = [_window(w, where, names) for w in record["windows"]]
    if record.get("events") is not None:
        if not isinstance(record["events"], list):
            raise BadResults(f"{where}: 'events' is not a list")
        result.events = [_event(e, where, names) for e in record["events"]]
    result.names = names
    return result


def _window(window: Any, where: str, names: dict[str, str]) -> tuple[float, float, dict[str, float]]:
    if not isinstance(window, dict):
        raise BadResults(f"{where}: a window is not an object")
    start, end = number(window.get("start"), f"{where}: a window start"), number(window.get("end"), f"{where}: a window end")
    return start, end, _labels(window.get("labels"), where, names)


def _event(event: Any, where: str, names: dict[str, str]) -> tuple[str, float, float]:
    if not isinstance(event, dict):
        raise BadResults(f"{where}: an event is not an object")
    mid = text(event.get("mid"), f"{where}: an event's mid")
    names.setdefault(mid, text(event.get("label"), f"{where}: an event's label"))
    start, end = number(event.get("start"), f"{where}: an event start"), number(event.get("end"), f"{where}: an event end")
    if not 0 <= start <= end:
        raise BadResults(f"{where}: an event from {start} to {end}")
    return mid, start, end


def _json_value(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadResults(f"{where}: not JSON ({error.msg})") from None


def _jsonl(file: Path) -> Iterator[InputResult | tuple[str, str]]:
    names: dict[str, str] = {}  # (one table per file, shared by its records)
    model = None  # (the older header line's, for the records after it)
    with open(file, encoding="utf-8-sig") as stream:
        for line_number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                value = _json_value(line, f"line {line_number}")
            except BadResults:
                if not line.endswith("\n") and line_number > 1:
                    continue  # (the half-written last line of a killed run)
                raise
            record = _from_record(value, file, f"line {line_number}", names, model)
            if record is None and isinstance(value.get("model"), str):
                model = value["model"]
            elif record is not None:
                yield record


def _json(file: Path) -> Iterator[InputResult | tuple[str, str]]:
    document = _json_value(file.read_text(encoding="utf-8-sig"), "the document")
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        raise BadResults("no 'files' list (a dymn-tag JSON document holds {model, settings, files})")
    names: dict[str, str] = {}
    model = document["model"] if isinstance(document.get("model"), str) else None
    for record_number, record in enumerate(document["files"], start=1):
        found = _from_record(record, file, f"file record {record_number}", names, model)
        if found is not None:
            yield found
