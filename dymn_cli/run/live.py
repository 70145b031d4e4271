"""`dymn-tag --live`: tag live sources until they end or a signal stops them, writing JSON Lines as it goes.

SIGINT and SIGTERM end the sources where they are: what has arrived is tagged, the last windows and
the open events are written, and the run exits as an interrupted offline run does (130 / 143). A
second signal stops at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dymn_cli.audio.live import LiveSource
from dymn_cli.audio.pcm import PcmFormat
from dymn_cli.errors import Interrupted, SignalReceived, UsageError
from dymn_cli.live_results import LiveEvent, LiveWindow, StreamEnd, StreamGap
from dymn_cli.run.stop_signals import raise_once, start_stop_scope
from dymn_cli.writers.base import OutputOptions
from dymn_cli.writers.destination import claim_output
from dymn_cli.writers.live import LiveJsonlWriter

__all__ = ["LiveSettings", "LiveSummary", "tag_live"]

log = logging.getLogger("dymn_cli")


@dataclass(frozen=True)
class LiveSettings:
    window: float = 10.0
    hop: float = 1.0
    pcm: PcmFormat | None = None
    reconnect: float = 300.0


@dataclass
class LiveSummary:
    windows: int = 0
    events: int = 0
    gaps: int = 0
    audio_seconds: float = 0.0
    elapsed: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    interrupted: Interrupted | None = None
    output_closed: bool = False  # whoever read the records stopped reading

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return self.interrupted.exit_code
        if self.output_closed:
            return 128 + signal.SIGPIPE
        return 1 if self.failures else 0

    def line(self) -> str:
        stopped = f", {self.interrupted}" if self.interrupted else ", the output was closed" if self.output_closed else ""
        return (
            f"{self.windows} window{'s' if self.windows != 1 else ''}, {self.events} event{'s' if self.events != 1 else ''}, "
            f"{self.gaps} gap{'s' if self.gaps != 1 else ''}, {len(self.failures)} failed source{'s' if len(self.failures) != 1 else ''}; "
            f"{self.audio_seconds / 3600:.3f} h of audio in {self.elapsed:.1f} s{stopped}"
        )


def tag_live(
    sources: Sequence[str],
    *,
    tagger: Any | Callable[[], Any],
    output: Path | None = None,
    format: str | None = None,
    options: OutputOptions = OutputOptions(),
    settings: LiveSettings = LiveSettings(),
) -> LiveSummary:
    """Tag `sources` (`-`, paths, URLs) live and write their records to `output` (else standard output)."""
    if not sources:
        raise UsageError("--live needs at least one source: - (standard input), a FIFO or device path, or a URL")
    if format not in (None, "jsonl") or (output is not None and output.suffix.lower() not in ("", ".jsonl")):
        raise UsageError("--live writes JSON Lines (--format jsonl, -o FILE.jsonl): a record per window as it is computed")
    if sources.count("-") > 1:
        raise UsageError("standard input (-) can be read only once")
    if output is not None:  # (the rules of every output; a live file is appended to, record by record)
        claim_output("-o", output, inputs=[s for s in sources if s != "-" and "://" not in s])
    started = time.monotonic()
    if not hasattr(tagger, "stream"):  # a factory: the model loads only once the options are checked
        tagger = tagger()
    live = [LiveSource(s, pcm=settings.pcm, reconnect=settings.reconnect, sample_rate=tagger.sample_rate) for s in sources]
    summary = LiveSummary()
    stop = threading.Event()
    writer = LiveJsonlWriter(output, options=options)
    with _signals_stop(stop) as received:
        try:
            records = tagger.stream(
                live,
                window=settings.window,
                hop=settings.hop,
                events=options.events,
                event_classes=options.classes,
                stop=stop,
            )
            for record in records:
                writer.write(record)
                _count(summary, record)
        except SignalReceived as stopped:  # the second signal: at once
            received.append(stopped.signum)
        except BrokenPipeError:  # the reader went away (`| head`): stop like a pipeline does, quietly
            stop.set()
            writer.discard()
            summary.output_closed = True
        finally:
            writer.close()
            summary.elapsed = time.monotonic() - started
    if received:
        summary.interrupted = Interrupted(received[0])
    return summary


def _count(summary: LiveSummary, record: Any) -> None:
    if isinstance(record, LiveWindow):
        summary.windows += 1
    elif isinstance(record, LiveEvent):
        summary.events += 1
    elif isinstance(record, StreamGap):
        summary.gaps += 1
    elif isinstance(record, StreamEnd):
        summary.audio_seconds += record.duration
        if record.error is not None:
            summary.failures.append((record.source, record.error))
            log.error("%s", record.error)


class _signals_stop:
    """SIGINT / SIGTERM: the first sets `stop` (the sources end where they are, everything is
    flushed), a second raises `SignalReceived`. Yields the list of signals received."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.received: list[int] = []
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> list[int]:
        start_stop_scope()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self.received

    def _handle(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self.stop.is_set():
            raise_once(signum)  # (a third one is only noted: the second's stop is being finished)
        self.stop.set()

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
