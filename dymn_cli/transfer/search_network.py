"""Which network `dymn-tag search` embeds its queries with: the one the index records, by default;
another one asked for is refused, naming both (two networks of one width give answers, all wrong)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dymn_cli.errors import UsageError
from dymn_cli.models.identity import Checkpoint, identify, local_checkpoint
from dymn_cli.transfer.similarity import EmbeddingIndex
from dymn_cli.writers.embeddings import network_name, same_network

__all__ = ["QueryNetwork", "query_network"]


@dataclass(frozen=True)
class QueryNetwork:
    """What to build the query tagger from: registry names (`model`) or local files (`weights`)."""

    model: str | None
    weights: list[Path] | None


def query_network(index: EmbeddingIndex, source: Path, *, model: str | None, weights: Sequence[Path] | None) -> QueryNetwork:
    """The network of the index at `source`, or the one asked for (`model`, `weights`), which must be
    it. An index of an earlier dymn-tag, which does not record its network, needs one asked for."""
    if model is None and not weights:
        if index.network is None:
            raise UsageError(
                f"{source} does not record the network that made it (written by an earlier dymn-tag): "
                "name it with --model or --weights"
            )
        return _recorded(index.network, source)
    asked = identify(None if weights else model, list(weights) if weights else None)
    if index.network is not None and not same_network(asked, index.network):
        raise UsageError(
            f"{source} was made by {network_name(index.network)}, not by {network_name(asked)}: "
            "search it with the network that made it (leave out --model and --weights)"
        )
    return QueryNetwork(None if weights else model, list(weights) if weights else None)


def _recorded(network: tuple[Checkpoint, ...], source: Path) -> QueryNetwork:
    """The recorded network, its local checkpoints found where they were and unchanged."""
    if all(member.file is None for member in network):  # (published models; an ensemble is of one kind)
        return QueryNetwork(",".join(member.name for member in network), None)
    files = [Path(member.file or member.name) for member in network]
    for member, file in zip(network, files):
        moved = not file.is_file() or local_checkpoint(file).sha256 != member.sha256
        if moved:
            raise UsageError(
                f"{source} was made by {member.label}, which is no longer at {file}"
                f"{' (another file is there)' if file.is_file() else ''}: name it with --weights"
            )
    return QueryNetwork(None, files)
