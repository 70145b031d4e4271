"""Progress on stderr: files, audio hours and ETA while a terminal watches; nothing otherwise."""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dymn_cli.results import TagFailure, TagResult
from dymn_cli.run.inputs import Input
from dymn_cli.terminal import printable

log = logging.getLogger("dymn_cli")


class RunProgress:
    """Tracks a labelling run; prints each failed input as one line, above the bar when there is one.
    (The log's formatter makes lines terminal-safe; what goes to the bar's console is escaped here.)"""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.audio_seconds = 0.0
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> RunProgress:
        return self

    def start(self, inputs: list[Input]) -> None:
        """Show the bar once the model is loaded (its download shows a bar of its own)."""
        if self.enabled:
            self._progress = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files  {task.fields[hours]:.2f} h audio"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("tagging", total=len(inputs), hours=0.0)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, outcome: TagResult | TagFailure) -> None:
        if isinstance(outcome, TagFailure):
            shown = "<stdin>" if outcome.source == "-" else outcome.source
            reason = outcome.reason
            line = reason if reason.startswith(shown) else f"{shown}: {reason}"
            if self._progress is not None:
                self._progress.console.print(f"dymn-tag: {printable(line)}", markup=False, highlight=False)
            else:
                log.error("%s", line)
        else:
            self.audio_seconds += outcome.duration
            if outcome.warnings:  # a damaged input, tagged from what could be decoded: one line for it
                line = f"{outcome.source}: warning: {'; '.join(outcome.warnings)}"
                if self._progress is not None:
                    self._progress.console.print(f"dymn-tag: {printable(line)}", markup=False, highlight=False)
                else:
                    log.warning("%s", line)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, hours=self.audio_seconds / 3600)
