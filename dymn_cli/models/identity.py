"""Which network wrote an output: each member's registry name, or for a local checkpoint file its
file name and SHA-256, so that `--resume`, `merge` and `search` never mix the work of two networks.

Outputs record it as one line, the model label: `dymn10_as`, `dymn04.pt@sha256:1a2b3c4d5e6f` (a local
file: its name and the first 12 hex digits of its SHA-256), members of an ensemble joined by commas.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dymn_cli.errors import UsageError, WeightsError
from dymn_cli.models.weights import get_record, sha256_file

__all__ = [
    "SHA256_PREFIX",
    "Checkpoint",
    "checkpoint_sha256",
    "identify",
    "local_checkpoint",
    "model_label",
    "same_label",
    "split_names",
]

SHA256_PREFIX = 12  # hex digits of a local checkpoint's SHA-256 in its label (48 bits: no two files of one user collide)


@dataclass(frozen=True)
class Checkpoint:
    """One member of the network: a published model (`sha256` None), or a local checkpoint file."""

    name: str  # the registry name, or the local file's name
    sha256: str | None = None  # the local file's SHA-256
    file: str | None = None  # the local file's absolute path, where it was when the output was written

    @property
    def label(self) -> str:
        return self.name if self.sha256 is None else f"{self.name}@sha256:{self.sha256[:SHA256_PREFIX]}"

    def same_network(self, other: Checkpoint) -> bool:
        """The same network: the same published model, or local files of equal content (whatever their names)."""
        if self.sha256 is None or other.sha256 is None:
            return self.sha256 == other.sha256 and self.name.lower() == other.name.lower()
        return self.sha256 == other.sha256


def model_label(members: Sequence[Checkpoint]) -> str:
    """How outputs name the network (see the module docstring)."""
    return ",".join(m.label for m in members)


def same_label(earlier: str | None, label: str) -> bool:
    """Whether an output's recorded model is `label`. An output of the release before local files were
    labelled with their SHA-256 names a local file by its stem alone (`dymn04`): it is read as that file."""
    if earlier is None or earlier == label:
        return earlier is not None
    stems = ",".join(Path(member.split("@sha256:")[0]).stem if "@sha256:" in member else member for member in label.split(","))
    return earlier.lower() == stems.lower()  # (that release also kept a published model's name as the user spelled it)


def split_names(model: str | Sequence[str] | None) -> list[str]:
    """`"a,b"` or `["a", "b"]` -> `["a", "b"]`."""
    if model is None:
        return []
    names = model.split(",") if isinstance(model, str) else list(model)
    names = [n.strip() for n in names if n and n.strip()]
    if not names:
        raise UsageError("no model named")
    return names


def identify(model: str | Sequence[str] | None, weights: str | Path | Sequence[str | Path] | None) -> tuple[Checkpoint, ...]:
    """The members a tagger of `model` (registry names) or `weights` (local files) will load, known before it loads."""
    if weights is None:
        return tuple(Checkpoint(get_record(name).name) for name in split_names(model))
    files = [weights] if isinstance(weights, (str, Path)) else list(weights)
    return tuple(local_checkpoint(Path(f)) for f in files)


def local_checkpoint(path: Path) -> Checkpoint:
    """A local checkpoint file as outputs record it."""
    real = Path(os.path.realpath(path.expanduser()))
    if not os.path.exists(real):
        raise WeightsError(f"weights file not found: {path}")
    return Checkpoint(path.name, checkpoint_sha256(real), str(real))


def checkpoint_sha256(path: Path) -> str:
    """The SHA-256 of a checkpoint file (hashed once per process while the file is unchanged)."""
    try:
        info = path.stat()
        return _hashed(str(path), info.st_size, info.st_mtime_ns)
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {path}") from None
    except OSError as error:
        raise WeightsError(f"{path}: cannot read the checkpoint: {error.strerror or error}") from None


@functools.lru_cache(maxsize=32)
def _hashed(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))
