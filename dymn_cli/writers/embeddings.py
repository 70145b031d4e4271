"""Embeddings archive: the clip (and window) embeddings of a run in one `.npz`, with paths and times.

Arrays (load with `numpy.load(path)`; no pickles):

- `paths` `[n_files]` str: the inputs that were tagged, in input order (failed inputs are left out);
- `clip_embeddings` `[n_files, C]` float32: each clip's embedding, the mean of its windows' embeddings;
- with windows: `window_embeddings` `[n_windows_total, C]` float32, `window_path_index` `[n_windows_total]`
  int64 (the row of `paths` each window belongs to), `window_starts`, `window_ends` `[n_windows_total]`
  float64 seconds: the same numbers as the timelines' `start` and `end` (to the microsecond, `end`
  clipped to the end of the file), so that the two join on (path, start, end);
- when the run's windows are known: `window_seconds`, `hop_seconds` (0-d float64), the window and hop the
  embeddings were computed with (`dymn-tag search` embeds its queries the same way);
- when the network is known: `model` (0-d str), its label as every output gives it (`dymn10_as`, or
  `dymn04.pt@sha256:1a2b3c4d5e6f` for a local checkpoint), and `checkpoints` `[n_members, 3]` str, each
  member's name, SHA-256 (empty for a published model) and file (the local checkpoint's absolute path,
  empty for a published model): `dymn-tag search` embeds its queries with that network, and refuses another.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dymn_cli.errors import UsageError
from dymn_cli.models.identity import Checkpoint, model_label
from dymn_cli.results import TagFailure, TagResult
from dymn_cli.writers.embeddings_archive import EMBEDDINGS, ArchiveError, read_embeddings_archive
from dymn_cli.writers.output_file import written
from dymn_cli.writers.targets import Target

__all__ = [
    "EmbeddingWriter",
    "archive_network",
    "embedding_arrays",
    "merge_embeddings",
    "network_arrays",
    "network_name",
    "same_network",
    "save_embeddings",
]


def network_arrays(network: Sequence[Checkpoint] | None) -> dict[str, np.ndarray]:
    """The archive's `model` and `checkpoints` for a network (none when it is not known)."""
    if not network:
        return {}
    rows = [[m.name, m.sha256 or "", m.file or ""] for m in network]
    return {"model": np.array(model_label(network)), "checkpoints": np.array(rows, dtype=str).reshape(len(rows), 3)}


def archive_network(arrays: Any, source: Path) -> tuple[Checkpoint, ...] | None:
    """The network an archive records (`arrays`: an open `np.load` archive or a dict of its arrays);
    None for an archive written before archives recorded it."""
    names = arrays.files if hasattr(arrays, "files") else list(arrays)
    if "checkpoints" not in names:
        return None
    rows = arrays["checkpoints"]
    if rows.ndim != 2 or rows.shape[1] != 3 or not len(rows) or rows.dtype.kind != "U":
        raise UsageError(f"{source}: a damaged embeddings archive (its checkpoints are not [members, 3] names)")
    return tuple(Checkpoint(str(name), str(sha) or None, str(file) or None) for name, sha, file in rows.tolist())


def embedding_arrays(
    results: Iterable[TagResult],
    *,
    windows: bool = False,
    window: float | None = None,
    hop: float | None = None,
    network: Sequence[Checkpoint] | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of the archive (see the module docstring) for these results."""
    results = list(results)
    width = results[0].embeddings.shape[1] if results else 0
    arrays: dict[str, np.ndarray] = {
        "paths": np.array([r.source for r in results], dtype=str),
        "clip_embeddings": np.stack([r.embedding for r in results]).astype(np.float32)
        if results
        else np.zeros((0, width), dtype=np.float32),
    }
    if windows:
        arrays["window_embeddings"] = (
            np.concatenate([r.embeddings for r in results]).astype(np.float32)
            if results
            else np.zeros((0, width), dtype=np.float32)
        )
        arrays["window_path_index"] = (
            np.concatenate([np.full(len(r.starts), n, dtype=np.int64) for n, r in enumerate(results)])
            if results
            else np.zeros(0, dtype=np.int64)
        )
        # the window record every output shares (`TagResult.window_times`): they join on (path, start, end)
        times = [r.window_times() for r in results]
        arrays["window_starts"] = np.concatenate([s for s, _ in times]) if results else np.zeros(0)
        arrays["window_ends"] = np.concatenate([e for _, e in times]) if results else np.zeros(0)
    if window is not None and hop is not None:
        arrays["window_seconds"] = np.array(float(window))
        arrays["hop_seconds"] = np.array(float(hop))
    arrays.update(network_arrays(network))
    return arrays


def save_embeddings(
    results: Iterable[TagResult],
    path: str | os.PathLike[str],
    *,
    windows: bool = False,
    window: float | None = None,
    hop: float | None = None,
    network: Sequence[Checkpoint] | None = None,
) -> Path:
    """Write the archive whole or not at all (see `dymn_cli.writers.output_file`); returns its path as given."""
    target = Path(path)
    arrays = embedding_arrays(results, windows=windows, window=window, hop=hop, network=network)
    buffer = io.BytesIO()  # (numpy's zip writer wants a file it can read back)
    np.savez(buffer, **arrays)
    with written(target) as stream:
        stream.write(buffer.getvalue())
    return target


class EmbeddingWriter:
    """A result sink for `label_inputs(extra_sinks=...)`: collects embeddings and writes them on `close`
    (also when the run is interrupted, with the inputs finished so far). `network`: the run's network
    (`dymn_cli.models.identity.identify`), which the archive records for `search`."""

    option = "--embeddings"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        windows: bool = False,
        window: float | None = None,
        hop: float | None = None,
        network: Sequence[Checkpoint] | None = None,
    ) -> None:
        self.path = Path(path)
        self.windows = windows
        self.window, self.hop = window, hop
        self.network = network
        self._results: list[TagResult] = []

    def write(self, outcome: TagResult | TagFailure) -> None:
        if isinstance(outcome, TagResult):
            # Keep only what the archive needs: not the [n_windows, 527] scores, nor (without
            # windows) more than the clip embedding.
            embeddings = outcome.embeddings if self.windows else outcome.embedding[None, :]
            self._results.append(
                TagResult(
                    source=outcome.source,
                    duration=outcome.duration,
                    scores=outcome.scores[:0],
                    starts=outcome.starts,
                    ends=outcome.ends,
                    window_scores=outcome.window_scores[:0, :0],
                    embeddings=embeddings,
                    classes=outcome.classes,
                )
            )

    def close(self) -> None:
        save_embeddings(self._results, self.path, windows=self.windows, window=self.window, hop=self.hop, network=self.network)


def merge_embeddings(
    sources: Sequence[Path], target: Target | str | os.PathLike[str], *, order_key: Callable[[str], Any] = str
) -> tuple[int, list[str]]:
    """Join archives (e.g. of `--shard` jobs) into one at `target`, inputs sorted by `order_key` of their
    paths; an input in several archives keeps its last one. Returns (inputs, paths found more than once).
    The archives must agree on their layout (windows or not), width, window and hop where recorded, and network."""
    entries: dict[str, dict[str, np.ndarray]] = {}
    network: tuple[Checkpoint, ...] | None = None
    duplicates: list[str] = []
    layout: tuple[Any, ...] | None = None
    for source in sources:
        arrays = _read_whole(source)
        windows = "window_embeddings" in arrays
        this = (
            windows,
            arrays["clip_embeddings"].shape[1],
            *(float(arrays[k]) for k in ("window_seconds", "hop_seconds") if k in arrays),
        )
        found = archive_network(arrays, source)
        if layout is None:
            layout, network = this, found
        elif this[:2] != layout[:2] or (len(this) == len(layout) == 4 and this != layout):
            raise UsageError(f"{source} was written with other settings (windows, width, window or hop) than {sources[0]}")
        elif not same_network(found, network):
            raise UsageError(
                f"{source} was made by {network_name(found)}, {sources[0]} by {network_name(network)}: they cannot be merged"
            )
        for row, path in enumerate(arrays["paths"].tolist()):
            if path in entries:
                duplicates.append(path)
            entry = {"clip": arrays["clip_embeddings"][row]}
            if windows:
                mine = arrays["window_path_index"] == row
                entry.update(
                    embeddings=arrays["window_embeddings"][mine],
                    starts=arrays["window_starts"][mine],
                    ends=arrays["window_ends"][mine],
                )
            entries[path] = entry
        timing = {k: float(arrays[k]) for k in ("window_seconds", "hop_seconds") if k in arrays}
    if layout is None:
        raise UsageError("nothing to merge")
    ordered = sorted(entries, key=order_key)
    merged = _merged_arrays([entries[p] for p in ordered], ordered, layout=layout, timing=timing)
    merged.update(network_arrays(network))
    buffer = io.BytesIO()  # (numpy's zip writer wants a file it can read back)
    np.savez(buffer, **merged)
    with written(target if isinstance(target, Target) else Path(target)) as stream:  # (dymn_cli.writers.output_file)
        stream.write(buffer.getvalue())
    return len(ordered), duplicates


def _merged_arrays(
    parts: list[dict[str, np.ndarray]], ordered: list[str], *, layout: tuple[Any, ...], timing: dict[str, float]
) -> dict[str, np.ndarray]:
    """The arrays of a merged archive: the inputs' `parts`, in the order of their paths (`ordered`)."""
    width = layout[1]
    merged: dict[str, np.ndarray] = {
        "paths": np.array(ordered, dtype=str),
        "clip_embeddings": np.stack([e["clip"] for e in parts]).astype(np.float32)
        if ordered
        else np.zeros((0, width), dtype=np.float32),
    }
    if layout[0]:
        merged["window_embeddings"] = (
            np.concatenate([e["embeddings"] for e in parts]).astype(np.float32)
            if parts
            else np.zeros((0, width), dtype=np.float32)
        )
        merged["window_path_index"] = (
            np.concatenate([np.full(len(e["starts"]), n, dtype=np.int64) for n, e in enumerate(parts)])
            if parts
            else np.zeros(0, dtype=np.int64)
        )
        merged["window_starts"] = np.concatenate([e["starts"] for e in parts]) if parts else np.zeros(0)
        merged["window_ends"] = np.concatenate([e["ends"] for e in parts]) if parts else np.zeros(0)
    if len(layout) == 4:
        merged["window_seconds"], merged["hop_seconds"] = np.array(timing["window_seconds"]), np.array(timing["hop_seconds"])
    return merged


def _read_whole(source: Path) -> dict[str, np.ndarray]:
    """Every array of a checked archive (`dymn_cli.writers.embeddings_archive`), embeddings finite."""
    archive = read_embeddings_archive(source)
    arrays = dict(archive.arrays)
    for name in EMBEDDINGS:
        if name in archive.members:
            arrays[name] = archive.read_embeddings(name)
            if not np.isfinite(arrays[name]).all():
                raise ArchiveError(f"{source}: {name} that are not finite numbers (NaN or infinite): a damaged archive")
    return arrays


def same_network(network: Sequence[Checkpoint] | None, other: Sequence[Checkpoint] | None) -> bool:
    """The same published models, or local checkpoints of equal content, in order (None: not recorded)."""
    if network is None or other is None:
        return network is None and other is None
    return len(network) == len(other) and all(a.same_network(b) for a, b in zip(network, other))


def network_name(network: Sequence[Checkpoint] | None) -> str:
    """A network in messages: its label, or that it is not recorded."""
    return model_label(network) if network else "a network it does not record (written by an earlier dymn-tag)"
