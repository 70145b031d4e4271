"""The table: Rich tables for people reading a terminal (or a text file), one block per input."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from dymn_cli.results import TagFailure, TagResult
from dymn_cli.terminal import printable
from dymn_cli.writers.base import OutputOptions, Writer
from dymn_cli.writers.output_file import OutputFile
from dymn_cli.writers.targets import Target, is_terminal, resolve_target


class TableWriter(Writer):
    """Rich tables for people: one block per input, best labels first."""

    name = "table"
    extension = ".txt"
    resumable = False

    def __init__(
        self, target: Path | Target | None, *, options: OutputOptions, header: dict[str, Any], append: bool = False
    ) -> None:
        super().__init__(target, options=options, header=header, append=append)
        self._file = OutputFile(target if isinstance(target, Target) else resolve_target(target))
        self._terminal = not self._file.target.is_file and is_terminal(self._file.target)

    def write(self, outcome: TagResult | TagFailure) -> None:
        from rich.console import Console
        from rich.table import Table

        if isinstance(outcome, TagFailure):
            return  # reported on stderr
        buffer = io.StringIO()
        console = Console(file=buffer, width=None if self._terminal else 100, force_terminal=self._terminal or None)
        console.print(
            f"{printable(outcome.source)}  ({outcome.duration:.1f} s, {_plural(len(outcome.starts), 'window')})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("label")
        table.add_column("score", justify="right")
        classes = outcome.classes
        for rank, i in enumerate(self.options.select(outcome.scores), start=1):
            table.add_row(str(rank), classes[i].name, f"{outcome.scores[i]:.4f}")
        console.print(table)
        if self.options.timeline:
            windows = Table(title="windows", title_justify="left")
            for column in ("start", "end", "labels"):
                windows.add_column(column, justify="left" if column == "labels" else "right")
            starts, ends = outcome.window_times()
            for s, e, w in zip(starts, ends, outcome.window_scores):
                picked = ", ".join(f"{classes[i].name} {w[i]:.2f}" for i in self.options.select(w))
                windows.add_row(f"{s:.2f}", f"{e:.2f}", picked or "-")
            console.print(windows)
        if self.options.events is not None:
            events = Table(title="events", title_justify="left")
            for column in ("start", "end", "label", "peak", "mean"):
                events.add_column(column, justify="left" if column == "label" else "right")
            for e in self.options.sound_events(outcome):
                events.add_row(f"{e['start']:.2f}", f"{e['end']:.2f}", e["label"], f"{e['peak']:.4f}", f"{e['mean']:.4f}")
            console.print(events)
        self._file.write(buffer.getvalue())
        if not self._file.target.is_file:
            self._file.flush()

    def close(self) -> None:
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
