"""How a run decodes: how many decode workers, started before the model loads or not, and what the
tagger is handed for each input (a path, or the standard input stream)."""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

from dymn_cli.audio.sources import RegularFile
from dymn_cli.inference.decode_stage import DecodeJob
from dymn_cli.inference.worker_pool import Decoding, PipelineSettings, start_decoding
from dymn_cli.models.frontend_config import FrontEndConfig
from dymn_cli.run.inputs import Input

__all__ = ["decode_first", "read_source", "worker_count"]


def decode_first(
    todo: list[Input], *, window: float, hop: float, workers: int, batch_size: int | None, timeout: float | None
) -> Decoding | None:
    """Start the decode workers on `todo` at the front end's sample rate, before the model loads
    (about a second with torch's import, while the workers would otherwise wait). Not for decoding
    in this process or standard input (read once, by whichever decoding comes last)."""
    if workers == 0 or any(item.is_stdin for item in todo):
        return None
    frontend = FrontEndConfig()  # the published models' (a checkpoint with other settings decodes anew)
    grid = frontend.window_grid(window=window, hop=hop)
    # How far the workers decode ahead follows the batch size. Without one asked for, guess the CPU
    # engine's default (8 windows a lane, a lane per torch thread) from the CPUs this process may use,
    # at most 128 windows: 330 MB of read-ahead at 10 s.
    batch_hint = batch_size or min(8 * torch_threads_guess(), 128)
    pipeline = PipelineSettings(
        grid=grid, batch_size=grid.batch_size(batch_hint), workers=workers, sample_rate=frontend.sample_rate, timeout=timeout
    )
    return start_decoding((DecodeJob(n, read_source(item), name=item.path) for n, item in enumerate(todo)), pipeline)


def torch_threads_guess() -> int:
    """torch's default thread count, without importing torch: OMP_NUM_THREADS, else the CPUs this
    process may run on (torch counts physical cores, so this may be twice as many)."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(requested: int | None, todo: list[Input], *, decode_first: bool) -> int:
    """Decoding processes: one core is left to the network. With `decode_first` even a single file
    gets one: started before torch's import, it has decoded the first windows by the time the model
    is ready (standard input alone is still read and decoded in process). Otherwise a single input is
    decoded in process, where a worker would only cost its start. With standard input among the
    inputs everything is decoded in process: standard input is then decoded as it comes, however long
    (a worker would need it read whole into memory first)."""
    if requested is not None:
        return requested
    if not todo or any(item.is_stdin for item in todo) or (len(todo) == 1 and not decode_first):
        return 0
    return max(1, min((os.cpu_count() or 2) - 1, 8, len(todo)))


def read_source(item: Input) -> Any:
    """What the tagger takes for an input: the path, or the standard input stream (named <stdin>)."""
    if not item.is_stdin:
        return RegularFile(item.path) if item.walked else item.path
    return sys.stdin.buffer if sys.stdin is not None else ClosedStdin()


class ClosedStdin:
    """Standard input when the process has none (started with `<&-`): reading it fails that input only."""

    name = "<stdin>"

    def read(self, size: int = -1) -> bytes:
        raise OSError(errno.EBADF, "standard input is closed")
