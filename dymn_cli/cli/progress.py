"""Progress on stderr while a terminal watches (nothing otherwise): a spinner while torch imports and
the model loads, then a bar by audio duration that advances inside a long file, with its ETA.

The total is the inputs' durations from their headers, read in a background thread while the run
goes; until every header is read (or for standard input, whose length nobody knows), the bar counts
files. Inside a file it advances with the windows through the network (`PipelineStats.windows`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from dymn_cli.audio.uris import is_uri
from dymn_cli.inference.pipeline import PipelineStats
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.run.inputs import Input, audio_seconds
from dymn_cli.run.summary import clock
from dymn_cli.terminal import printable

log = logging.getLogger("dymn_cli")

MAX_PROBED = 20_000  # more inputs than this: the bar counts files (reading every header would take long)
REFRESH_S = 0.25


class _AudioColumn(ProgressColumn):
    """`0:12:03/0:45:00 audio  3/10 files`, or the files alone while the total is not known."""

    def render(self, task: Any) -> Text:
        files = f"{task.fields['done']}/{task.fields['files']} files"
        if task.fields["by_audio"]:
            return Text(f"{clock(task.completed)}/{clock(task.total)} audio  {files}", style="progress.download")
        return Text(files, style="progress.download")


class RunProgress:
    """Tracks a labelling run; prints each failed input as one line, above the bar when there is one.
    (The log's formatter makes lines terminal-safe; what goes to the bar's console is escaped here.)"""

    def __init__(self, *, enabled: bool, stats: PipelineStats | None = None, hop: float = 10.0) -> None:
        self.enabled = enabled
        self.stats = stats if stats is not None else PipelineStats()
        self.hop = hop
        self.audio_seconds = 0.0
        self._console = Console(stderr=True)
        self._progress: Progress | None = None
        self._task: Any = None
        self._durations: dict[str, float] = {}
        self._total: float | None = None
        self._done_files = 0
        self._done_audio = 0.0  # by the headers, of the inputs finished
        self._windows_at_last = 0
        self._finished: list[str] = []
        self._lock = threading.Lock()  # (the durations arrive from another thread)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._shown = contextlib.ExitStack()  # the bar, while it is on the screen

    def __enter__(self) -> RunProgress:
        return self

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner with `message` while a slow step runs (torch's import, the model's load)."""
        if not self.enabled:
            yield
            return
        from dymn_cli.terminal import live_display  # (beside the run's imports: the display's own)

        with self._console.status(message, spinner="dots") as spinner, live_display(spinner.stop, spinner.start):
            yield

    def start(self, inputs: list[Input]) -> None:
        """Show the bar once the model is loaded (its download shows a bar of its own)."""
        if not self.enabled:
            return
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("tagging"),
            BarColumn(),
            TaskProgressColumn(),
            _AudioColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
            refresh_per_second=1 / REFRESH_S,
        )
        self._progress.start()
        from dymn_cli.terminal import live_display

        self._shown.enter_context(live_display(self._progress.stop, self._progress.start))
        self._task = self._progress.add_task("tagging", total=len(inputs), files=len(inputs), done=0, by_audio=False)
        self._windows_at_last = self.stats.windows
        # (standard input has no length to read; remote URIs are not asked twice for theirs)
        if 0 < len(inputs) <= MAX_PROBED and not any(i.is_stdin or is_uri(i.path) for i in inputs):
            self._spawn(self._read_durations, inputs)
            self._spawn(self._follow_windows)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"progress-{target.__name__}")
        thread.start()
        self._threads.append(thread)

    def _read_durations(self, inputs: list[Input]) -> None:
        durations = {}
        for item in inputs:
            if self._stop.is_set():
                return
            durations[item.path] = audio_seconds(item) or 0.0
        with self._lock:
            self._durations = durations
            self._done_audio = sum(durations.get(path, 0.0) for path in self._finished)
            self._total = sum(durations.values()) or None

    def _follow_windows(self) -> None:
        """Moves the bar by audio duration: the inputs finished, and the windows of the one in the
        network since (a window a hop of audio), until the next input finishes."""
        while not self._stop.wait(REFRESH_S):
            if self._progress is None or self._total is None:
                continue
            inside = (self.stats.windows - self._windows_at_last) * self.hop
            done = min(self._done_audio + max(inside, 0.0), self._total)
            self._progress.update(self._task, total=self._total, completed=done, by_audio=True)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1.0)
        self._shown.close()
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
        with self._lock:
            self._done_files += 1
            self._finished.append(outcome.source)
            self._done_audio += self._durations.get(outcome.source, 0.0)
            self._windows_at_last = self.stats.windows
        if self._progress is not None and self._task is not None:
            if self._total is None:
                self._progress.update(self._task, completed=self._done_files, done=self._done_files)
            else:
                self._progress.update(
                    self._task,
                    total=self._total,
                    completed=min(self._done_audio, self._total),
                    done=self._done_files,
                    by_audio=True,
                )
