"""Streaming inference: live sources -> windows -> the network, each window as soon as its last sample is in.

One reader thread per source decodes what arrives (`audio/live.py`) into a bounded queue; this loop cuts
windows (`WindowCutter`, the offline grid), and runs the network on whatever windows are complete the
moment nothing more is waiting in the queue (up to `batch_size` of them, across sources). At real time
that is one window per call, as soon as it is complete; a source pumped faster than real time fills
whole batches, as the offline pipeline does. The queue is bounded, so a fast source waits for the
network (the pipe fills and its writer blocks) instead of piling up audio: memory stays flat.

Torch-free: the engine is passed in.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from dymn_cli.audio.live import Arrival, LiveSource, SourceGap
from dymn_cli.audio.windows import WindowCutter, WindowGrid
from dymn_cli.errors import DymnError

__all__ = ["LiveOutputs", "SourceEnd", "SourceInterruption", "stream_windows"]

log = logging.getLogger("dymn_cli")

STOP_GRACE = 1.0
"""Seconds the readers get, once the stream is stopped, to hand on what they have read."""

QUEUE_BLOCKS = 32
"""Decoded blocks waiting for the network, all sources together (each at most 64 KiB of input)."""


@dataclass(frozen=True)
class LiveOutputs:
    """The network's outputs for one window of one source."""

    source: int  # index into the sources
    index: int  # window number in that source's stream
    start: int  # first sample (stream position at the model's rate)
    end: int  # one past the last sample the window covers (its last window may reach past the stream's end)
    logits: np.ndarray  # [K]
    embedding: np.ndarray  # [C]
    wall_start: float  # time.time() when the window's first sample arrived
    arrived: float  # time.monotonic() when its last sample arrived


@dataclass(frozen=True)
class SourceInterruption:
    """A source's gap, at stream position `position` (samples)."""

    source: int
    position: int
    gap: SourceGap


@dataclass(frozen=True)
class SourceEnd:
    """A source ended after `n_samples` samples; `error` says why if it failed."""

    source: int
    n_samples: int
    error: str | None = None


_End = object()  # what a reader puts in the queue last


class _SourceState:
    def __init__(self, grid: WindowGrid) -> None:
        self.cutter = WindowCutter(grid)
        self.blocks: deque[tuple[int, float, float]] = deque()  # (end position, monotonic, wall) of blocks still needed
        self.ended = False

    def stamps(self, start: int, last: int) -> tuple[float, float]:
        """Wall time of sample `start`'s arrival, monotonic time of sample `last`'s."""
        wall = next((w for end, _, w in self.blocks if end > start), self.blocks[-1][2])
        arrived = next((m for end, m, _ in self.blocks if end > last), self.blocks[-1][1])
        return wall, arrived

    def forget_before(self, position: int) -> None:
        while len(self.blocks) > 1 and self.blocks[0][0] <= position:
            self.blocks.popleft()


def stream_windows(
    sources: Sequence[LiveSource],
    *,
    engine: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    grid: WindowGrid,
    batch_size: int,
    stop: threading.Event,
) -> Iterator[LiveOutputs | SourceInterruption | SourceEnd]:
    """Tag `sources` side by side as they arrive, until all have ended or `stop` is set (then what has
    arrived is tagged, the last windows zero-padded as at the end of a file). Per source, items come
    in stream order, its `SourceEnd` last."""
    inbox: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
    closed = threading.Event()  # nobody reads the queue any more
    readers = [
        threading.Thread(target=_pump, args=(i, source, inbox, stop, closed), name=f"dymn-live-{i}", daemon=True)
        for i, source in enumerate(sources)
    ]
    states = [_SourceState(grid) for _ in sources]
    ready: deque = deque()  # windows (source, index, samples, wall, arrived) and notices, in order
    for reader in readers:
        reader.start()
    try:
        open_sources = len(sources)
        deadline = None  # once `stop` is set: how long the readers get to hand on what they hold
        while open_sources or ready:
            item = None
            if open_sources:
                try:  # wait only when there is nothing to compute
                    item = inbox.get(timeout=0.1) if not ready else inbox.get_nowait()
                except queue.Empty:
                    pass
                if stop.is_set() and item is None:
                    deadline = deadline or time.monotonic() + STOP_GRACE
                    if time.monotonic() >= deadline:  # (a reader stuck in a network read: end it here)
                        for i, state in enumerate(states):
                            if not state.ended:
                                _end(i, state, None, ready)
                        open_sources = 0
            if item is not None:
                i, what = item
                state = states[i]
                if state.ended:
                    continue
                if isinstance(what, Arrival):
                    state.blocks.append((state.cutter.n_samples + len(what.samples), what.monotonic, what.wall))
                    for index, window in state.cutter.feed(what.samples):
                        ready.append(_window(i, index, window, state, grid))
                elif isinstance(what, SourceGap):
                    ready.append(SourceInterruption(i, state.cutter.n_samples, what))
                else:
                    _end(i, state, what, ready)
                    open_sources -= 1
                if inbox.qsize() and len(ready) < batch_size:
                    continue  # more is waiting: take it first, for fuller batches
            while ready and not isinstance(ready[0], tuple):
                yield ready.popleft()
            if ready:
                batch = []
                while ready and isinstance(ready[0], tuple) and len(batch) < batch_size:
                    batch.append(ready.popleft())
                logits, embeddings = engine(np.stack([w[2] for w in batch]))
                for (i, index, _, wall, arrived), logit, embedding in zip(batch, logits, embeddings):
                    start = index * grid.hop
                    yield LiveOutputs(i, index, start, start + grid.window, logit, embedding, wall, arrived)
                while ready and not isinstance(ready[0], tuple):
                    yield ready.popleft()
    finally:
        stop.set()
        closed.set()
        until = time.monotonic() + STOP_GRACE  # (a reader may hold decoder state: let it end before the interpreter does)
        for reader in readers:
            reader.join(timeout=max(0.0, until - time.monotonic()))


def _window(i: int, index: int, window: np.ndarray, state: _SourceState, grid: WindowGrid) -> tuple:
    start = index * grid.hop
    last = min(start + grid.window, state.cutter.n_samples) - 1
    wall, arrived = state.stamps(start, last)
    state.forget_before((index + 1) * grid.hop)
    return (i, index, window, wall, arrived)


def _end(i: int, state: _SourceState, what: object, ready: deque) -> None:
    state.ended = True
    error = what if isinstance(what, str) else None
    if state.cutter.n_samples:
        if not state.blocks:
            state.blocks.append((state.cutter.n_samples, 0.0, 0.0))
        for index, window in state.cutter.finish():
            ready.append(_window(i, index, window, state, state.cutter.grid))
    ready.append(SourceEnd(i, state.cutter.n_samples, error))


def _pump(i: int, source: LiveSource, inbox: queue.Queue, stop: threading.Event, closed: threading.Event) -> None:
    """A reader thread: the source's arrivals into the queue, then its end (an error message or `_End`)."""
    end: object = _End
    try:
        for arrival in source.arrivals(stop):  # (once stopped, a source ends at its next read)
            if not _put(inbox, (i, arrival), closed):
                return
    except DymnError as error:
        end = str(error)
    except Exception as error:  # (a reader thread must always report its end, or the run would wait forever)
        log.debug("live source %s failed", source.name, exc_info=True)
        end = f"{source.name}: {type(error).__name__}: {error}"
    _put(inbox, (i, end), closed)


def _put(inbox: queue.Queue, item: tuple, closed: threading.Event) -> bool:
    """Wait for room in the queue (this is what holds a fast source back); False once nobody reads it."""
    while not closed.is_set():
        try:
            inbox.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False
