"""What the local taggers share, whatever runs their network: the torch engine (`tagger.Tagger`) or
onnxruntime (`onnx_tagger.OnnxTagger`). Both cut the same windows, decode through the same pipeline,
stream live sources and build the same results; a subclass sets the engine and the classes. Free of
torch, so that the ONNX path never imports it.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from dymn_cli.audio.decode import Deadline, prepare_waveform, read_stream
from dymn_cli.audio.live import LiveSource
from dymn_cli.audio.live_reader import LiveTarget
from dymn_cli.audio.pcm import PcmFormat
from dymn_cli.audio.windows import WindowGrid
from dymn_cli.errors import AudioError, UsageError
from dymn_cli.events import EventDetector, EventSettings, SoundEvent
from dymn_cli.inference.decode_stage import DecodeJob, failure_reason
from dymn_cli.inference.pipeline import Failure, PipelineStats, WindowOutputs, run_pipeline
from dymn_cli.inference.worker_pool import Decoding, PipelineSettings
from dymn_cli.live_results import LiveEvent, LiveRecord, LiveWindow, StreamEnd, StreamGap, wall_time
from dymn_cli.models.frontend_config import FrontEndConfig
from dymn_cli.results import AGGREGATES, TagFailure, TagResult, build_result, score_windows
from dymn_cli.tagging import AudioTagger, source_name

log = logging.getLogger(__name__)

LIVE_HOP = 1.0
"""Default hop of a live stream: a record every second (and events on a 1 s grid)."""


def hop_for(window: float, hop: float | None, *, default_hop: float) -> float:
    """`hop`, else `default_hop` but never longer than `window`: a shorter window given alone would
    otherwise leave the audio between windows untagged."""
    return min(default_hop, window) if hop is None else hop


TagSource = str | Path | bytes | BinaryIO | np.ndarray | Any
"""What a tagger tags: a path, the bytes of a file, a binary file object, or a waveform (a numpy
array or a torch tensor) with its rate."""


class Engine(Protocol):
    """A batch of windows `[B, N]` -> (logits `[B, K]`, embeddings `[B, C]`), and the batch it runs best."""

    @property
    def preferred_batch_size(self) -> int: ...

    def __call__(self, waveforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class EngineTagger(AudioTagger):
    """Tags audio on this machine with an `engine`: files, streams, arrays (`tag`, `tag_many`, `embed`)
    and live sources (`stream`). A subclass sets `engine`, `batch_size`, `frontend_config` (the rate and
    the shortest window), `classes` and `head`, and may score logits its own way (`score_windows`)."""

    takes_decoding = True
    default_window: float = 10.0
    """The window (seconds) when a call gives none: 10 s, what the models were trained on; a graph's own."""
    default_hop: float = 10.0
    engine: Engine
    batch_size: int
    frontend_config: FrontEndConfig

    def score_windows(self, logits: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """`[n, len(classes)]` scores of `n` windows from their logits and embeddings."""
        return score_windows(logits, embeddings, classes=self.classes, head=self.head)

    @property
    def sample_rate(self) -> int:
        return self.frontend_config.sample_rate

    def tag(
        self,
        source: TagSource,
        *,
        sample_rate: int | None = None,
        window: float | None = None,
        hop: float | None = None,
        aggregate: str = "mean",
    ) -> TagResult:
        """Tag one input: a path, encoded bytes, a binary file object, or an array with its `sample_rate`."""
        outcome = next(iter(self.tag_many([source], sample_rate=sample_rate, window=window, hop=hop, aggregate=aggregate)))
        if isinstance(outcome, TagFailure):
            raise AudioError(outcome.reason)
        return outcome

    def tag_many(
        self,
        sources: Iterable[TagSource],
        *,
        sample_rate: int | None = None,
        window: float | None = None,
        hop: float | None = None,
        aggregate: str = "mean",
        workers: int = 0,
        stats: PipelineStats | None = None,
        decoding: Decoding | None = None,
        timeout: float | None = None,
    ) -> Iterator[TagResult | TagFailure]:
        """Tag many inputs through one batched pipeline; yields one outcome per input, in input order.

        A bad input yields a `TagFailure` and the others go on. `workers > 0` decodes in that many
        processes while the network runs. `stats` collects where the time went. `decoding` is the
        decoding of these same `sources` (paths), started earlier by `worker_pool.start_decoding`; it is
        used if it cuts the windows this model needs, else stopped and the sources decoded anew.
        `timeout` (seconds) fails an input whose decoding and tagging takes longer.

        Every input is isolated the same way, whatever decodes it: an array of the wrong shape, a
        stream that cannot be read, a decoder that raises or crashes, each becomes the `TagFailure`
        of that input only. A stream (a binary file object, e.g. ``sys.stdin.buffer``) is decoded as
        it comes, in bounded memory, when decoded in this process (`workers=0`); for a worker process
        it is read whole first, up to `MAX_STREAM_BUFFER` bytes.
        """
        if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
            raise UsageError(f"the timeout must be a positive number of seconds, got {timeout}")
        if aggregate not in AGGREGATES:
            raise UsageError(f"unknown aggregate {aggregate!r}: use {' or '.join(AGGREGATES)}")
        window = self.default_window if window is None else window
        hop = hop_for(window, hop, default_hop=self.default_hop)
        grid = self.frontend_config.window_grid(window=window, hop=hop)
        names: list[str] = []

        def jobs() -> Iterator[DecodeJob]:
            for index, source in enumerate(sources):
                names.append(source_name(source))
                try:
                    decodable = self._decodable(source, sample_rate, in_process=workers == 0, timeout=timeout)
                except UsageError:  # a call that cannot work for any input (an array without its rate)
                    raise
                except Exception as error:  # noqa: BLE001 - this input only, like any decoding failure
                    yield DecodeJob(index, None, name=names[-1], failure=failure_reason(error, names[-1]))
                else:
                    yield DecodeJob(index, decodable, name=names[-1])

        settings = PipelineSettings(
            grid=grid, batch_size=grid.batch_size(self.batch_size), workers=workers, sample_rate=self.sample_rate, timeout=timeout
        )
        if decoding is not None and not decoding.decodes_for(settings):
            decoding.close()
            decoding = None
        if decoding is not None:
            names.extend(map(source_name, sources))
        started = decoding if decoding is not None else jobs()
        for outcome in run_pipeline(started, engine=self.engine, settings=settings, stats=stats):
            name = names[outcome.index]
            if isinstance(outcome, Failure):
                yield TagFailure(name, outcome.reason)
            else:
                yield self._result(name, outcome, grid, aggregate)

    def stream(
        self,
        sources: LiveTarget | LiveSource | Sequence[LiveTarget | LiveSource],
        *,
        window: float | None = None,
        hop: float = LIVE_HOP,
        pcm: str | PcmFormat | None = None,
        events: EventSettings | None = None,
        event_classes: Sequence[int] | None = None,
        reconnect: float = 300.0,
        stop: threading.Event | None = None,
    ) -> Iterator[LiveRecord]:
        """Tag live streams as they arrive: yields a `LiveWindow` for each window as soon as its last
        sample is in, with `events` a `LiveEvent` for each sound event when it ends (among
        `event_classes` if given), a `StreamGap` when a network source dropped and came back, and a
        `StreamEnd` when a source ends. Several sources are tagged side by side.

        A source is `-` (standard input), a FIFO, device or file path, a network URL FFmpeg opens
        (`http(s)://`, `rtsp://`, `rtmp://`, `srt://`, `udp://`), a file descriptor or a binary file
        object with one, or a `LiveSource`. `pcm` (`"s16le:48000:2"`) reads headerless PCM instead of a
        container. A network source that drops is reopened with backoff for up to `reconnect` seconds
        (0: never). Setting `stop` ends every source where it is: what has arrived is tagged (the last
        windows zero-padded, as at the end of a file), the open events are closed, and the iteration ends.

        >>> for record in Tagger("dymn10_as").stream("-", pcm="s16le:32000:1"):  # doctest: +SKIP
        ...     print(record)
        """
        from dymn_cli.inference.live import LiveOutputs, SourceInterruption, stream_windows

        targets = (
            [sources] if isinstance(sources, (str, int, os.PathLike, LiveSource)) or hasattr(sources, "read") else list(sources)
        )  # type: ignore[arg-type]
        if not targets:
            raise UsageError("no live source given")
        live = [
            t if isinstance(t, LiveSource) else LiveSource(t, pcm=pcm, reconnect=reconnect, sample_rate=self.sample_rate)
            for t in targets
        ]
        window = self.default_window if window is None else window
        grid = WindowGrid.from_seconds(window=window, hop=hop, sample_rate=self.sample_rate)
        rate = self.sample_rate
        detectors = [
            EventDetector(
                threshold=events.levels(len(self.classes)),
                min_duration=events.min_duration,
                classes=event_classes,
                class_table=self.classes,
            )
            if events is not None
            else None
            for _ in live
        ]
        recent: list[deque[tuple[int, float]]] = [
            deque(maxlen=grid.window // grid.hop + 4) for _ in live
        ]  # (start, wall) of windows
        stop = stop if stop is not None else threading.Event()

        def when(i: int, seconds: float) -> datetime:
            position = round(seconds * rate)
            start, wall = next(
                ((s, w) for s, w in reversed(recent[i]) if s <= position), recent[i][0] if recent[i] else (0, time.time())
            )
            return wall_time(wall + (position - start) / rate)

        def event_records(i: int, found: list[SoundEvent]) -> Iterator[LiveEvent]:
            for event in sorted(found, key=lambda e: (e.start, -e.peak, e.index)):
                yield LiveEvent(live[i].name, event, when(i, event.start))

        for item in stream_windows(live, engine=self.engine, grid=grid, batch_size=self.batch_size, stop=stop):
            if isinstance(item, LiveOutputs) and not (np.isfinite(item.logits).all() and np.isfinite(item.embedding).all()):
                yield unscored_window(live[item.source].name, item, rate)  # (never a NaN score in a record)
            elif isinstance(item, LiveOutputs):
                i = item.source
                scores = self.score_windows(item.logits[None], item.embedding[None])[0]
                recent[i].append((item.start, item.wall_start))
                yield LiveWindow(
                    live[i].name,
                    item.index,
                    item.start / rate,
                    item.end / rate,
                    wall_time(item.wall_start),
                    scores,
                    item.embedding,
                    time.monotonic() - item.arrived,
                    self.classes,
                )
                detector = detectors[i]
                if detector is not None:
                    yield from event_records(i, detector.feed([item.start / rate], [item.end / rate], scores[None]))
            elif isinstance(item, SourceInterruption):
                gap = item.gap
                yield StreamGap(
                    live[item.source].name, item.position / rate, wall_time(gap.lost), wall_time(gap.resumed), gap.reason
                )
            else:
                detector = detectors[item.source]
                if detector is not None and item.n_samples:
                    yield from event_records(item.source, detector.finish(item.n_samples / rate))
                yield StreamEnd(live[item.source].name, item.n_samples / rate, item.error)

    def embed(
        self, source: TagSource, *, sample_rate: int | None = None, window: float | None = None, hop: float | None = None
    ) -> np.ndarray:
        """Clip embedding of one input: the mean of its windows' embeddings, `[C]`."""
        return self.tag(source, sample_rate=sample_rate, window=window, hop=hop).embedding

    def _decodable(self, source: TagSource, sample_rate: int | None, *, in_process: bool, timeout: float | None) -> Any:
        if isinstance(source, np.ndarray) or type(source).__module__.split(".")[0] == "torch":  # (no torch import)
            if sample_rate is None:
                raise UsageError("an array needs its sample_rate")
            return _InMemoryAudio(prepare_waveform(source, source_rate=sample_rate, sample_rate=self.sample_rate))
        if isinstance(source, (str, Path, bytes, bytearray)):
            return os.fspath(source) if isinstance(source, Path) else source
        if hasattr(source, "read"):
            if in_process:  # decoded as it comes, in bounded memory
                return source
            deadline = Deadline(timeout) if timeout is not None else None
            return read_stream(source, source_name(source), deadline=deadline)
        raise UsageError(f"cannot tag an object of type {type(source).__name__}")

    def _result(self, name: str, outputs: WindowOutputs, grid: WindowGrid, aggregate: str) -> TagResult:
        return build_result(
            name,
            outputs,
            grid=grid,
            aggregate=aggregate,
            sample_rate=self.sample_rate,
            classes=self.classes,
            head=self.head,
            window_scores=self.score_windows(outputs.logits, outputs.embeddings),
        )


def unscored_window(name: str, item: Any, rate: int) -> StreamGap:
    """A live window whose network output is not a number (NaN or infinite), left out of the stream as
    a gap, as a block of such samples is: a file's input fails instead, a stream goes on."""
    reason = f"the network's output for the window at {item.start / rate:g} s is not a number (NaN or infinite): left out"
    log.warning("%s: %s", name, reason)
    lost = wall_time(item.wall_start)
    return StreamGap(name, item.start / rate, lost, wall_time(item.wall_start + (item.end - item.start) / rate), reason)


class _InMemoryAudio(np.ndarray):
    """Marks an already decoded 32 kHz waveform so that the decode stage passes it through."""

    def __new__(cls, array: np.ndarray) -> _InMemoryAudio:
        return np.asarray(array, dtype=np.float32).view(cls)
