"""Embeddings archive: the clip (and window) embeddings of a run in one `.npz`, with paths and times.

Arrays (load with `numpy.load(path)`; no pickles):

- `paths` `[n_files]` str: the inputs that were tagged, in input order (failed inputs are left out);
- `clip_embeddings` `[n_files, C]` float32: each clip's embedding, the mean of its windows' embeddings;
- with windows: `window_embeddings` `[n_windows_total, C]` float32, `window_path_index` `[n_windows_total]`
  int64 (the row of `paths` each window belongs to), `window_starts`, `window_ends` `[n_windows_total]`
  float64 seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dymn_cli.atomic import atomic_binary_file
from dymn_cli.results import TagFailure, TagResult

__all__ = ["EmbeddingWriter", "embedding_arrays", "save_embeddings"]


def embedding_arrays(results: Iterable[TagResult], *, windows: bool = False) -> dict[str, np.ndarray]:
    """The arrays of the archive (see the module docstring) for these results."""
    results = list(results)
    width = results[0].embeddings.shape[1] if results else 0
    arrays: dict[str, np.ndarray] = {
        "paths": np.array([r.source for r in results], dtype=str),
        "clip_embeddings": np.stack([r.embedding for r in results]).astype(np.float32)
        if results else np.zeros((0, width), dtype=np.float32),
    }
    if windows:
        arrays["window_embeddings"] = (
            np.concatenate([r.embeddings for r in results]).astype(np.float32) if results
            else np.zeros((0, width), dtype=np.float32)
        )
        arrays["window_path_index"] = np.concatenate(
            [np.full(len(r.starts), n, dtype=np.int64) for n, r in enumerate(results)]
        ) if results else np.zeros(0, dtype=np.int64)
        arrays["window_starts"] = np.concatenate([np.asarray(r.starts, dtype=np.float64) for r in results]) \
            if results else np.zeros(0)
        arrays["window_ends"] = np.concatenate([np.asarray(r.ends, dtype=np.float64) for r in results]) \
            if results else np.zeros(0)
    return arrays


def save_embeddings(results: Iterable[TagResult], path: str | os.PathLike[str], *, windows: bool = False) -> Path:
    """Write the archive atomically (temporary file beside it, then rename); returns its path as given."""
    target = Path(path)
    arrays = embedding_arrays(results, windows=windows)
    with atomic_binary_file(target) as stream:
        np.savez(stream, **arrays)
    return target


class EmbeddingWriter:
    """A result sink for `label_inputs(extra_sinks=...)`: collects embeddings and writes them on `close`
    (also when the run is interrupted, with the inputs finished so far)."""

    def __init__(self, path: str | os.PathLike[str], *, windows: bool = False) -> None:
        self.path = Path(path)
        self.windows = windows
        self._results: list[TagResult] = []

    def write(self, outcome: TagResult | TagFailure) -> None:
        if isinstance(outcome, TagResult):
            # Keep only what the archive needs: not the [n_windows, 527] scores, nor (without
            # windows) more than the clip embedding.
            embeddings = outcome.embeddings if self.windows else outcome.embedding[None, :]
            self._results.append(TagResult(
                source=outcome.source, duration=outcome.duration, scores=outcome.scores[:0],
                starts=outcome.starts, ends=outcome.ends, window_scores=outcome.window_scores[:0, :0],
                embeddings=embeddings, classes=outcome.classes,
            ))

    def close(self) -> None:
        save_embeddings(self._results, self.path, windows=self.windows)
