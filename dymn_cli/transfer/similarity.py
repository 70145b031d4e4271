"""Similarity search over an embeddings archive (`dymn-tag search QUERY... --index EMB.npz`).

The index is the `.npz` that `dymn-tag --embeddings` writes (and `dymn-tag merge` joins): clip
embeddings, and window embeddings when it was written with `--timeline`. Search is exact: the cosine
similarity of each query to every entry, computed as one matrix product per block of entries (so the
extra memory is a block, not a copy of the index), keeping the best `top` of each block.

    index = load_index("library.npz")
    hits = search(index, tagger.embed("query.wav")[None, :], top=10)[0]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dymn_cli.errors import UsageError
from dymn_cli.models.identity import Checkpoint
from dymn_cli.writers.embeddings import archive_network, network_name, same_network
from dymn_cli.writers.embeddings_archive import read_embeddings_archive

__all__ = ["BLOCK_ROWS", "EmbeddingIndex", "QueryResult", "SearchHit", "load_index", "search", "search_audio", "top_similar"]

BLOCK_ROWS = 65_536  # index rows per matrix product (a view of the index; the products: 0.5 MB a query)


@dataclass
class EmbeddingIndex:
    """Embeddings to search, one row per entry: clips (`starts` None) or windows."""

    embeddings: np.ndarray  # [n, C] float32
    paths: np.ndarray  # [n_files] str
    path_index: np.ndarray  # [n] row of `paths` of each entry
    starts: np.ndarray | None = None  # [n] seconds (windows only)
    ends: np.ndarray | None = None
    norms: np.ndarray | None = None  # [n] the rows' lengths, computed once
    window: float | None = None  # seconds: the window and hop the embeddings were computed with, if known
    hop: float | None = None
    network: tuple[Checkpoint, ...] | None = None  # the network that computed them, if recorded

    def __post_init__(self) -> None:
        if self.norms is None:  # (block by block: a memory-mapped index is read once, never copied whole)
            self.norms = (
                np.concatenate(
                    [
                        np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
                        for block in _blocks(self.embeddings, BLOCK_ROWS)
                    ]
                )
                if len(self.embeddings)
                else np.zeros(0)
            )

    @property
    def windows(self) -> bool:
        return self.starts is not None

    @property
    def dimension(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def window_seconds(self) -> float | None:
        """The index's window length: as recorded, else from its windows' times; None if unknown."""
        if self.window is not None:
            return self.window
        if self.starts is None or self.ends is None or not len(self.starts):
            return None
        return float(np.median(self.ends - self.starts))

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])


@dataclass(frozen=True)
class SearchHit:
    rank: int
    path: str
    similarity: float
    start: float | None = None
    end: float | None = None

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"rank": self.rank, "path": self.path}
        if self.start is not None:
            record["start"] = round(self.start, 6)
            record["end"] = round(float(self.end or 0.0), 6)
        record["similarity"] = round(self.similarity, 6)
        return record


def load_index(path: str | os.PathLike[str], *, windows: bool | None = None, memory_map: bool = False) -> EmbeddingIndex:
    """An embeddings archive as an index: its windows when it has window embeddings (or `windows=True`,
    which then requires them), else its clips (`windows=False` forces clips).

    The archive is read defensively (`dymn_cli.writers.embeddings_archive`: one line and exit 2 for
    anything else). The embeddings are read straight from the archive file (not through `zipfile`, 50
    times slower on a 4 GB index) into memory, or with `memory_map` left mapped: no load time and no
    memory of the process's own, for an index larger than the memory, at the price of reading it from
    the page cache (or the disk) at every search."""
    archive = read_embeddings_archive(path)
    source, arrays = archive.path, archive.arrays
    if windows and not archive.has_windows:
        raise UsageError(f"{source}: has no window embeddings (write them with --embeddings and --timeline)")
    if archive.has_windows and windows is not False:
        index = EmbeddingIndex(
            embeddings=archive.read_embeddings("window_embeddings", memory_map=memory_map),
            paths=arrays["paths"],
            path_index=arrays["window_path_index"].astype(np.int64),
            starts=arrays["window_starts"].astype(np.float64),
            ends=arrays["window_ends"].astype(np.float64),
        )
    else:
        clips = archive.read_embeddings("clip_embeddings", memory_map=memory_map)
        index = EmbeddingIndex(embeddings=clips, paths=arrays["paths"], path_index=np.arange(len(clips), dtype=np.int64))
    index.network = archive_network(arrays, source)
    index.window, index.hop = archive.setting("window_seconds"), archive.setting("hop_seconds")
    if index.window is None or index.hop is None:
        index.window = index.hop = None
        if archive.has_windows and len(arrays["window_starts"]):
            index.window = float(np.median(arrays["window_ends"] - arrays["window_starts"]))
    if not len(index):
        raise UsageError(f"{source}: an embeddings archive with no entries: nothing to search")
    assert index.norms is not None
    if not np.isfinite(index.norms).all():
        raise UsageError(f"{source}: embeddings that are not finite numbers (NaN or infinite): a damaged archive")
    return index


def search(index: EmbeddingIndex, queries: np.ndarray, *, top: int = 10) -> list[list[SearchHit]]:
    """The `top` entries most similar (cosine) to each of `[m, C]` queries, best first (ties: index order)."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    if queries.shape[1] != index.dimension:
        raise UsageError(
            f"the queries' embeddings have {queries.shape[1]} dimensions, the index's {index.dimension}: "
            "search with the model that wrote the index"
        )
    similarities, rows = top_similar(index, queries, top=top)
    return [
        [_hit(index, rank, int(row), float(value)) for rank, (row, value) in enumerate(zip(r, s), start=1)]
        for r, s in zip(rows, similarities)
    ]


def top_similar(
    index: EmbeddingIndex, queries: np.ndarray, *, top: int, block_rows: int = BLOCK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """`(similarities [m, k], rows [m, k])` of the best `k = min(top, len(index))` entries per query."""
    m = len(queries)
    k = min(top, len(index))
    q_norms = np.linalg.norm(queries.astype(np.float64), axis=1)
    unit = (queries / np.where(q_norms > 0, q_norms, 1.0)[:, None]).astype(np.float32)
    norms = index.norms if index.norms is not None else np.ones(len(index))
    # 1 / length of each entry, 0 for a silent one (which resembles nothing: similarity 0)
    inverse = np.divide(1.0, norms, out=np.zeros(len(norms)), where=norms > 0).astype(np.float32)
    best_values = np.full((m, 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((m, 0), dtype=np.int64)
    for begin, block in zip(range(0, len(index), block_rows), _blocks(index.embeddings, block_rows)):
        values = unit @ block.T  # [m, b] float32
        values *= inverse[begin : begin + len(block)]
        if values.shape[1] > k:
            keep = np.argpartition(-values, k - 1, axis=1)[:, :k]
        else:
            keep = np.broadcast_to(np.arange(values.shape[1]), (m, values.shape[1]))
        best_values = np.concatenate([best_values, np.take_along_axis(values, keep, axis=1)], axis=1)
        best_rows = np.concatenate([best_rows, keep + begin], axis=1)
        if best_values.shape[1] > k:
            keep = np.argpartition(-best_values, k - 1, axis=1)[:, :k]
            best_values = np.take_along_axis(best_values, keep, axis=1)
            best_rows = np.take_along_axis(best_rows, keep, axis=1)
    order = np.lexsort((best_rows, -best_values), axis=1) if m else np.zeros((0, 0), dtype=np.int64)
    values = np.clip(np.take_along_axis(best_values, order, axis=1), -1.0, 1.0)  # (float32 rounding: 1.0000002)
    return values, np.take_along_axis(best_rows, order, axis=1)


def _blocks(rows: np.ndarray, size: int) -> Any:
    return (rows[begin : begin + size] for begin in range(0, len(rows), size))


def _hit(index: EmbeddingIndex, rank: int, row: int, similarity: float) -> SearchHit:
    path = str(index.paths[index.path_index[row]])
    if index.starts is None or index.ends is None:
        return SearchHit(rank, path, similarity)
    return SearchHit(rank, path, similarity, float(index.starts[row]), float(index.ends[row]))


@dataclass
class QueryResult:
    """The hits of one query input, or why it could not be embedded."""

    query: str
    hits: list[SearchHit]
    error: str | None = None


def search_audio(
    tagger: Any,
    queries: Sequence[Any],
    index: EmbeddingIndex,
    *,
    top: int = 10,
    window: float | None = None,
    hop: float | None = None,
    workers: int = 0,
) -> list[QueryResult]:
    """Embed each query (paths or anything `Tagger.tag_many` takes) with `tagger` and search `index`
    with its clip embedding (the mean of its windows). Window and hop: those given, else the index's
    (recorded in the archive, or read off its windows' times), else 10 s. A query that cannot be
    decoded gets its error, the others their hits. A tagger of another network than the one the index
    records is refused (`UsageError`)."""
    from dymn_cli.results import TagFailure

    network = getattr(tagger, "checkpoints", None)  # (an AudioTagger's; the index's own network is checked against it)
    if index.network is not None and network is not None and not same_network(network, index.network):
        raise UsageError(
            f"the index was made by {network_name(index.network)}, not by {network_name(network)}: search it with that network"
        )
    length = window if window is not None else index.window_seconds or 10.0
    step = hop if hop is not None else index.hop if index.hop is not None and window is None else length
    outcomes = list(tagger.tag_many(queries, window=length, hop=step, workers=workers))
    embedded = [o for o in outcomes if not isinstance(o, TagFailure)]
    found = search(index, np.stack([o.embedding for o in embedded]), top=top) if embedded else []
    hits = iter(found)
    return [
        QueryResult(o.source, [], o.reason) if isinstance(o, TagFailure) else QueryResult(o.source, next(hits)) for o in outcomes
    ]
