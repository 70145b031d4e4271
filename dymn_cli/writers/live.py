"""Live records as JSON Lines: one line per window, event, gap and ended source, flushed at once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from dymn_cli.live_results import LiveEvent, LiveRecord, LiveWindow, StreamEnd, StreamGap
from dymn_cli.writers.base import SCORE_DECIMALS, OutputOptions, label_entries

__all__ = ["LiveJsonlWriter", "live_record"]


def live_record(record: LiveRecord, options: OutputOptions) -> dict[str, Any]:
    """The JSON object of one live record; `type` says which: window, event, gap or end."""
    if isinstance(record, LiveWindow):
        return {
            "type": "window",
            "source": record.source,
            "start": round(record.start, 6),
            "end": round(record.end, 6),
            "time": _iso(record.time),
            "labels": label_entries(record.scores, options, record.classes),
        }
    if isinstance(record, LiveEvent):
        return {
            "type": "event",
            "source": record.source,
            **record.event.as_dict(decimals=SCORE_DECIMALS),
            "time": _iso(record.time),
        }
    if isinstance(record, StreamGap):
        return {
            "type": "gap",
            "source": record.source,
            "start": round(record.position, 6),
            "time": _iso(record.lost),
            "resumed": _iso(record.resumed),
            "seconds": round(record.seconds, 3),
            "reason": record.reason,
        }
    if isinstance(record, StreamEnd):
        ended: dict[str, Any] = {"type": "end", "source": record.source, "duration": round(record.duration, 6)}
        if record.error is not None:
            ended["error"] = record.error
        return ended
    raise TypeError(f"not a live record: {type(record).__name__}")


def _iso(moment: Any) -> str:
    return moment.isoformat(timespec="milliseconds")


class LiveJsonlWriter:
    """Writes each record as one JSON line to `target` (appended) or standard output, flushed at once."""

    def __init__(self, target: Path | None, *, options: OutputOptions) -> None:
        self.options = options
        if target is None:
            self._stream: TextIO = sys.stdout
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(target, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, record: LiveRecord) -> None:
        self._stream.write(json.dumps(live_record(record, self.options), ensure_ascii=False) + "\n")
        self._stream.flush()

    def discard(self) -> None:
        """The reader is gone: drop what is buffered (so that no flush at exit fails again)."""
        if self._stream is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self._stream = sys.stdout

    def close(self) -> None:
        if self._stream is not sys.stdout:
            self._stream.close()
