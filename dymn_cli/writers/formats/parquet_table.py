"""Parquet: the CSV's long-form rows as a typed table, written a row group at a time (needs pyarrow)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dymn_cli.errors import DymnError, OutputError, UsageError
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.writers.base import OutputOptions, Writer, check_columns
from dymn_cli.writers.formats.csv_table import CsvWriter, grouped_rows
from dymn_cli.writers.names import json_text, name_from_csv
from dymn_cli.writers.output_file import OutputFile
from dymn_cli.writers.targets import Target, resolve_target


class ParquetWriter(CsvWriter):
    """The CSV's long-form rows as a Parquet table (needs pyarrow), written a row group at a time;
    the run's model and settings go in the file's metadata (key `dymn`)."""

    name = "parquet"
    kind = "Parquet"
    extension = ".parquet"
    STRINGS, INTEGERS = ("path", "label", "mid"), ("rank", "index")
    ROW_GROUP = 65_536

    def __init__(
        self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False
    ) -> None:
        Writer.__init__(self, target, options=options, header=header, append=append)
        self.validate(options=options, target=self.target, inputs=())
        self._table = _ParquetTable(target, columns=self.columns(options), header=header)

    @classmethod
    def read_header(cls, target: Path) -> dict[str, Any] | None:
        schema = _pyarrow().parquet.read_schema(target)
        return json.loads((schema.metadata or {}).get(b"dymn", b"null"))

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any], model: str | None = None) -> None:
        schema = _pyarrow().parquet.read_schema(target)
        check_columns(schema.names, cls.columns(options))
        Writer.check_resumable.__func__(cls, target, options=options, settings=settings, model=model)  # type: ignore[attr-defined]

    @classmethod
    def read_layout(cls, target: Path) -> Any:
        return tuple(_pyarrow().parquet.read_schema(target).names), cls.read_header(target)

    @classmethod
    def iter_records(cls, target: Path, *, payloads: bool = True) -> Iterator[tuple[str, Any]]:
        table = _pyarrow().parquet.ParquetFile(target)
        columns = None if payloads else ["path"]

        def rows() -> Iterator[list[Any]]:
            for batch in table.iter_batches(batch_size=8192, columns=columns):
                yield from zip(*batch.to_pydict().values())

        yield from grouped_rows(rows(), payloads=payloads, key=name_from_csv)

    def write(self, outcome: TagResult | TagFailure) -> None:
        self._table.add(self.rows(outcome))

    def write_existing(self, path: str, payload: Any) -> None:
        self._table.add(payload)

    def close(self) -> None:
        self._table.close()

    def discard(self) -> None:
        self._table.discard()

    @classmethod
    def write_table(cls, target: Path | None, *, columns: Sequence[str], rows: list[list[Any]], header: dict[str, Any]) -> None:
        table = _ParquetTable(target, columns=columns, header=header)
        table.add(rows)
        table.close()


class _ParquetTable:
    """Rows written to a Parquet file through `OutputFile`, a row group each `ParquetWriter.ROW_GROUP` rows."""

    def __init__(self, target: Path | Target | None, *, columns: Sequence[str], header: dict[str, Any]) -> None:
        pa = _pyarrow()
        self._types = [
            pa.string() if c in ParquetWriter.STRINGS else pa.int32() if c in ParquetWriter.INTEGERS else pa.float64()
            for c in columns
        ]
        self._schema = pa.schema(list(zip(columns, self._types)), metadata={"dymn": json_text(header)})
        self._file = OutputFile(target if isinstance(target, Target) else resolve_target(target))
        self._file.on_complete = None
        self._rows: list[list[Any]] = []
        try:
            self._writer = pa.parquet.ParquetWriter(self._file, self._schema)
        except OSError as error:
            self._file.discard()
            raise OutputError(f"{self._file.name}: cannot write: {error}") from None

    def add(self, rows: list[list[Any]]) -> None:
        self._rows += rows
        if len(self._rows) >= ParquetWriter.ROW_GROUP:
            self._flush(self._rows[: ParquetWriter.ROW_GROUP])
            self._rows = self._rows[ParquetWriter.ROW_GROUP :]

    def _flush(self, rows: list[list[Any]]) -> None:
        pa = _pyarrow()
        arrays = [pa.array([row[n] for row in rows], type=t) for n, t in enumerate(self._types)]
        try:
            self._writer.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        except DymnError:
            raise
        except OSError as error:
            self._file.discard()
            raise OutputError(f"{self._file.name}: cannot write: {error}") from None

    def close(self) -> None:
        while self._rows:
            rows, self._rows = self._rows[: ParquetWriter.ROW_GROUP], self._rows[ParquetWriter.ROW_GROUP :]
            self._flush(rows)
        try:
            self._writer.close()
        except DymnError:
            raise
        except OSError as error:
            self._file.discard()
            raise OutputError(f"{self._file.name}: cannot write: {error}") from None
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise UsageError("the parquet format needs pyarrow: pip install pyarrow (or 'dymn-cli[ray]')") from error
    return pyarrow
