"""One network or an ensemble of them, resolved from registry names or checkpoint files.

The authors' ensembles average the members' logits (the sigmoid comes after); the embedding of an
ensemble is the concatenation of its members' embeddings. Members see the same log-mels, so nothing
is decoded or transformed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dymn_cli.audioset.labels import audioset_classes
from dymn_cli.errors import UsageError, WeightsError
from dymn_cli.models.build import build_model
from dymn_cli.models.checkpoints import resolve_weights
from dymn_cli.models.frontend import FrontEndConfig
from dymn_cli.models.identity import split_names
from dymn_cli.models.weights import WeightsRecord, cached_path


class Ensemble(nn.Module):
    """Averages the logits of its members and concatenates their embeddings."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.num_classes = members[0].num_classes
        self.embedding_dim = sum(m.embedding_dim for m in members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [member(x) for member in self.members]
        logits = torch.stack([logit for logit, _ in outputs]).mean(dim=0)
        return logits, torch.cat([embedding for _, embedding in outputs], dim=1)


@dataclass
class Members:
    name: str
    records: list[WeightsRecord | None]
    network: nn.Module
    frontend: FrontEndConfig
    paths: list[Path]  # each member's checkpoint file (a local file, or the cached download)


def load_members(
    *,
    model: str | Sequence[str] | None,
    weights: str | Path | Sequence[str | Path] | None,
    sha256: str | None = None,
    progress: bool = False,
) -> Members:
    """Resolve and build every member; a single member is returned as the plain network.

    `sha256` is the hash of the one checkpoint asked for: with several (an ensemble) it would be
    ambiguous, and is refused. Every member must predict the 527 AudioSet classes.
    """
    count = (
        len([weights] if isinstance(weights, (str, Path)) else list(weights)) if weights is not None else len(split_names(model))
    )
    if sha256 is not None and count != 1:
        raise UsageError(
            f"--sha256 is the hash of one checkpoint, and {count} were given: check each file with "
            "sha256sum, or load them one at a time"
        )
    if weights is not None:
        paths = [weights] if isinstance(weights, (str, Path)) else list(weights)
        resolved = [resolve_weights(weights=p, sha256=sha256 if len(paths) == 1 else None, progress=progress) for p in paths]
        labels = [Path(p).stem for p in paths]
        files = [Path(p).expanduser() for p in paths]
    else:
        names = split_names(model)
        resolved = [resolve_weights(model=n, sha256=sha256 if len(names) == 1 else None, progress=progress) for n in names]
        labels = names
        files = [cached_path(record) for record, _ in resolved if record is not None]
    networks = [build_model(state_dict) for _, state_dict in resolved]
    expected = len(audioset_classes())
    for label, network in zip(labels, networks):
        if network.num_classes != expected:
            raise WeightsError(
                f"{label}: its classifier has {network.num_classes} outputs, not the {expected} AudioSet classes "
                "this tool labels (checkpoints with their own classes are not supported yet)"
            )
    records = [record for record, _ in resolved]
    frontends = {record.frontend if record is not None else FrontEndConfig() for record in records}
    if len(frontends) != 1:
        raise WeightsError("ensemble members need the same front end settings")
    if len({n.num_classes for n in networks}) != 1:
        raise WeightsError("ensemble members predict different numbers of classes")
    network = networks[0] if len(networks) == 1 else Ensemble(networks)
    return Members(name=",".join(labels), records=records, network=network, frontend=frontends.pop(), paths=files)
