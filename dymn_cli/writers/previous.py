"""What an earlier output holds, for `--resume`: kept in a temporary SQLite database on disk, so
that resuming a huge output takes the same memory as resuming a small one.

`PreviousRecords.read(writer_type, target)` goes through the output once, one input at a time
(`Writer.iter_records`); the run then asks which inputs are done (`path in previous`) and, for the
formats that are rewritten whole (CSV, JSON, Parquet), what was written for each (`previous[path]`).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["PreviousRecords"]


def _key(path: str) -> bytes:
    return path.encode("utf-8", "surrogatepass")  # (non-UTF-8 file names arrive as lone surrogates)


class PreviousRecords:
    """The inputs an earlier output recorded, and (with `payloads`) what was written for each; the
    last record of an input wins, as in the earlier file's own reading."""

    def __init__(self) -> None:
        # "" is SQLite's private temporary database: in memory while small, then a deleted file in
        # the temporary folder, gone when the connection closes.
        self._db = sqlite3.connect("")
        self._db.execute("CREATE TABLE records (path BLOB PRIMARY KEY, payload TEXT)")
        self._count = 0

    @classmethod
    def read(cls, writer_type: Any, target: Path, *, payloads: bool) -> PreviousRecords:
        previous = cls()
        rows = (
            (_key(path), None if payload is None else json.dumps(payload))
            for path, payload in writer_type.iter_records(target, payloads=payloads)
        )
        with previous._db:
            previous._db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?)", rows)
        previous._count = previous._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return previous

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __contains__(self, path: object) -> bool:
        if not self._count or not isinstance(path, str):
            return False
        return self._db.execute("SELECT 1 FROM records WHERE path = ?", (_key(path),)).fetchone() is not None

    def __getitem__(self, path: str) -> Any:
        found = self._db.execute("SELECT payload FROM records WHERE path = ?", (_key(path),)).fetchone()
        if found is None:
            raise KeyError(path)
        return None if found[0] is None else json.loads(found[0])

    def close(self) -> None:
        self._db.close()
