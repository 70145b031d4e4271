"""Read the tables `dymn-tag` writes (CSV or Parquet): long (clip labels, a timeline or events) or
wide (one column per class), grouped by input; with the model and settings that wrote them, when a
settings record (CSV) or the file's metadata (Parquet) says."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dymn_cli.audioset.vocabulary import HEAD_ID_PREFIX, Vocabulary
from dymn_cli.errors import UsageError
from dymn_cli.evaluate.result_values import BadResults, InputResult, number, score, text
from dymn_cli.writers.names import name_from_csv
from dymn_cli.writers.settings_record import read_settings_record

__all__ = ["table_records"]

LONG_COLUMNS = ("path", "rank", "label", "mid", "index", "score")
TIMELINE_COLUMNS = ("path", "start", "end", "label", "mid", "index", "score")
EVENT_COLUMNS = ("path", "start", "end", "label", "mid", "index", "peak", "mean")


def table_records(file: Path) -> Iterator[InputResult]:
    """The inputs of a CSV or Parquet table."""
    if file.suffix.lower() == ".csv":
        header, rows = _csv_rows(file)
        provenance = _csv_provenance(file)
    else:
        header, rows, provenance = _parquet_rows(file)
    model = provenance.get("model") if isinstance(provenance.get("model"), str) else None
    settings = provenance.get("settings") if isinstance(provenance.get("settings"), dict) else {}
    for result in _table(file, (header, rows), aggregate=str(settings.get("aggregate", "mean"))):
        result.model = model
        yield result


def _csv_provenance(file: Path) -> dict[str, Any]:
    if not file.is_file():  # (a FIFO is read once, by the reader itself)
        return {}
    try:
        found = read_settings_record(file)
    except (OSError, ValueError, AttributeError, TypeError):  # (no record, or not this file's: unknown)
        return {}
    return found if isinstance(found, dict) else {}


def _csv_rows(file: Path) -> tuple[list[str], Iterator[list[str]]]:
    # utf-8-sig: a table saved again by a spreadsheet starts with a byte order mark.
    stream = open(file, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by the generator below
    reader = csv.reader(stream)
    header = next(reader, None)
    if not header:
        stream.close()
        raise BadResults("empty")

    def rows() -> Iterator[list[str]]:
        with stream:
            yield from reader

    return header, rows()


def _parquet_rows(file: Path) -> tuple[list[str], Iterator[list[Any]], dict[str, Any]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise UsageError(f"{file}: reading Parquet needs pyarrow: pip install 'dymn-cli[ray]'") from None
    try:
        table = parquet.ParquetFile(file)
        names = list(table.schema_arrow.names)
        metadata = table.schema_arrow.metadata or {}
    except Exception as error:  # (pyarrow raises its own kinds for every sort of damage)
        raise BadResults(f"not a Parquet table ({_first_line(error)})") from None
    try:
        provenance = json.loads(metadata.get(b"dymn", b"{}"))
    except ValueError:
        provenance = {}

    def rows() -> Iterator[list[Any]]:
        try:
            for batch in table.iter_batches(batch_size=8192):
                yield from (list(row) for row in zip(*batch.to_pydict().values()))
        except Exception as error:
            raise BadResults(f"damaged Parquet data ({_first_line(error)})") from None

    return names, rows(), provenance if isinstance(provenance, dict) else {}


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:80] if str(error) else type(error).__name__


def _table(file: Path, header_rows: tuple[list[str], Iterator[list[Any]]], *, aggregate: str) -> Iterator[InputResult]:
    """Rows of a long or wide table, grouped by input (they come grouped)."""
    header, rows = header_rows
    columns = tuple(header)
    if columns[:2] == ("path", "duration"):
        yield from _wide(file, columns, rows)
        return
    if columns not in (LONG_COLUMNS, TIMELINE_COLUMNS, EVENT_COLUMNS):
        raise BadResults(
            f"unexpected columns {','.join(columns)[:120]!r} (a dymn-tag table starts path,rank,... or path,duration,...)"
        )
    current: InputResult | None = None
    names: dict[str, str] = {}
    for where, row in _full_rows(rows, columns):
        values = dict(zip(columns, row))
        path = name_from_csv(text(values["path"], f"{where}: the path"))
        if current is None or current.path != path:
            if current is not None:
                yield _finished(current, aggregate)
            current = InputResult(path, file, names=names)
            if columns != LONG_COLUMNS:
                current.windows, current.events = ([], None) if columns == TIMELINE_COLUMNS else (None, [])
        mid = text(values["mid"], f"{where}: the mid")
        current.names.setdefault(mid, text(values["label"], f"{where}: the label"))
        if columns == LONG_COLUMNS:
            current.scores[mid] = score(values["score"], f"{where}: the score")
        elif columns == TIMELINE_COLUMNS:
            _add_window_row(current, values, mid, where)
        else:
            start, end = number(values["start"], f"{where}: the start"), number(values["end"], f"{where}: the end")
            current.events.append((mid, start, end))  # type: ignore[union-attr]
            current.scores[mid] = max(current.scores.get(mid, 0.0), score(values["peak"], f"{where}: the peak"))
    if current is not None:
        yield _finished(current, aggregate)


def _full_rows(rows: Iterator[list[Any]], columns: tuple[str, ...]) -> Iterator[tuple[str, list[Any]]]:
    """`(where, row)` for each row after the header, empty ones skipped; a row of another width is bad."""
    for number_, row in enumerate(rows, start=2):
        if not row:
            continue
        where = f"row {number_}"
        if len(row) != len(columns):
            raise BadResults(f"{where}: {len(row)} fields, expected {len(columns)}")
        yield where, row


def _finished(result: InputResult, aggregate: str) -> InputResult:
    """A timeline table holds no clip scores: they are its windows' scores, aggregated as the run did
    (`--aggregate`, mean unless its settings say max); a class missing from a window counts as 0 there."""
    if result.windows:
        ids = {mid for _, _, scores in result.windows for mid in scores}
        for mid in ids:
            values = [scores.get(mid, 0.0) for _, _, scores in result.windows]
            result.scores[mid] = max(values) if aggregate == "max" else sum(values) / len(values)
    return result


def _add_window_row(current: InputResult, values: dict[str, Any], mid: str, where: str) -> None:
    start, end = number(values["start"], f"{where}: the start"), number(values["end"], f"{where}: the end")
    value = score(values["score"], f"{where}: the score")
    windows = current.windows
    assert windows is not None
    current.duration = max(current.duration or 0.0, end)  # (the last window's end is the file's end)
    if not windows or windows[-1][:2] != (start, end):
        windows.append((start, end, {}))
    windows[-1][2][mid] = value


def _wide(file: Path, columns: tuple[str, ...], rows: Iterator[list[Any]]) -> Iterator[InputResult]:
    ids = [_wide_column_id(name) for name in columns[2:]]
    names = {mid: name.removeprefix(HEAD_ID_PREFIX) for mid, name in zip(ids, columns[2:])}
    for where, row in _full_rows(rows, columns):
        path = name_from_csv(text(row[0], f"{where}: the path"))
        result = InputResult(path, file, duration=number(row[1], f"{where}: the duration"))
        # An empty cell is a score under its class's threshold (--threshold, --thresholds): absent, as in a top list.
        result.scores = {
            mid: score(value, f"{where}: the score of {mid}") for mid, value in zip(ids, row[2:]) if value not in ("", None)
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
