"""Classification heads: a user's own classes, scored from a network's window embeddings.

A head is a small classifier (linear, or one hidden ReLU layer) trained by `dymn_cli.transfer` on the
frozen network's embeddings. Applying one is a few array operations, here in numpy, so that results
and writers stay free of torch:

    probabilities = activation(layers((embedding - mean) / scale))

`activation` is a softmax when every training example had exactly one class, else an independent
sigmoid per class (multi-label data).

The file is a safetensors file: raw little-endian arrays behind a JSON header, so loading one can
never run code (a pickle, `torch.save` or joblib file is refused before anything in it is read as
objects). Arrays: `mean`, `scale` `[C]` float64; `weight.0`, `bias.0`, ... one pair per layer
(`weight.k` is `[inputs, outputs]`), float32. The header's metadata holds, as JSON under the key `dymn_head`:

    {"format": "dymn-cli-head", "version": 1,
     "classes": ["compressor fault", "frog", ...], "activation": "softmax" | "sigmoid",
     "backbone": {"name": "dymn10_as", "sha256": ["<hex>", ...], "embedding_dim": 960},
     "window": 10.0, "hop": 10.0, "sample_rate": 32000,
     "training": {...}}   (how it was trained and its held-out figures; informational)

`backbone.sha256` holds the SHA-256 of each checkpoint file of the network (one, or one per ensemble
member): a head only fits the network whose embeddings it was trained on, and `check_backbone`
refuses any other with one clear error.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dymn_cli.atomic import atomic_binary_file
from dymn_cli.errors import HeadError

__all__ = [
    "ACTIVATIONS",
    "HEAD_FORMAT",
    "HEAD_VERSION",
    "MAX_HEAD_BYTES",
    "Backbone",
    "ClassifierHead",
    "head_bytes",
    "is_head_file",
    "load_head",
    "save_head",
]

HEAD_FORMAT = "dymn-cli-head"
HEAD_VERSION = 1
ACTIVATIONS = ("softmax", "sigmoid")
_METADATA_KEY = "dymn_head"
MAX_HEAD_BYTES = 256 * 2**20  # a head is a few layers on embeddings of 1280 at most: far less than this
_MAX_HEADER = 100 * 2**20  # bytes of JSON header a head file may have (safetensors' own limit)


@dataclass(frozen=True)
class Backbone:
    """The network a head was trained on: its name, the SHA-256 of each checkpoint file, embedding width."""

    name: str
    sha256: tuple[str, ...]
    embedding_dim: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": list(self.sha256), "embedding_dim": self.embedding_dim}


@dataclass
class ClassifierHead:
    """A trained head: class names, the layers, the feature statistics and where it fits."""

    classes: tuple[str, ...]
    backbone: Backbone
    mean: np.ndarray  # [C] feature means of the training windows
    scale: np.ndarray  # [C] their standard deviations (1 where a feature was constant)
    layers: list[tuple[np.ndarray, np.ndarray]]  # (weight [in, out], bias [out]); ReLU between layers
    activation: str = "softmax"
    window: float = 10.0
    hop: float = 10.0
    sample_rate: int = 32_000
    training: dict[str, Any] = field(default_factory=dict)
    path: str | None = field(default=None, compare=False)  # the file it was loaded from, for messages

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        _validate(self)

    @property
    def embedding_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def hidden(self) -> int | None:
        """Units of the hidden layer, None for a linear head."""
        return int(self.layers[0][0].shape[1]) if len(self.layers) > 1 else None

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """`[n, C]` embeddings -> `[n, K]` logits, in float64 (the random test networks' embeddings
        reach 1e12: float32 would lose the standardised values' digits)."""
        x = (np.asarray(embeddings, dtype=np.float64) - self.mean) / self.scale
        for n, (weight, bias) in enumerate(self.layers):
            if n:
                x = np.maximum(x, 0.0)
            x = x @ weight.astype(np.float64) + bias
        return x

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """`[n, C]` embeddings -> `[n, K]` class probabilities (float32)."""
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_dim:
            raise HeadError(f"the head takes {self.embedding_dim}-dimensional embeddings, got shape {tuple(embeddings.shape)}")
        logits = self.logits(embeddings)
        if self.activation == "softmax":
            shifted = logits - logits.max(axis=1, keepdims=True)
            exp = np.exp(shifted)
            return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return np.exp(-np.logaddexp(0.0, -logits)).astype(np.float32)  # sigmoid without overflow

    def check_backbone(self, backbone: Backbone) -> None:
        """Raise `HeadError` unless `backbone` is the network this head was trained on."""
        source = self.path or "the head"
        if tuple(backbone.sha256) != tuple(self.backbone.sha256) or backbone.embedding_dim != self.embedding_dim:
            raise HeadError(
                f"{source} was trained on the embeddings of {self.backbone.name} "
                f"(weights SHA-256 {_short(self.backbone.sha256)}), not of {backbone.name} "
                f"(SHA-256 {_short(backbone.sha256)}): tag with the model it was trained on, or train a head for this one"
            )

    def metadata(self) -> dict[str, Any]:
        return {
            "format": HEAD_FORMAT,
            "version": HEAD_VERSION,
            "classes": list(self.classes),
            "activation": self.activation,
            "backbone": self.backbone.as_dict(),
            "window": self.window,
            "hop": self.hop,
            "sample_rate": self.sample_rate,
            "training": self.training,
        }


def head_bytes(head: ClassifierHead) -> bytes:
    """`head` as the bytes of a safetensors head file (the CLI writes them through the output layer)."""
    from safetensors.numpy import save

    # (statistics in float64: the random test networks' embeddings reach 1e12, beyond float32's digits)
    tensors = {"mean": head.mean.astype(np.float64), "scale": head.scale.astype(np.float64)}
    for n, (weight, bias) in enumerate(head.layers):
        tensors[f"weight.{n}"] = np.ascontiguousarray(weight, dtype=np.float32)
        tensors[f"bias.{n}"] = np.ascontiguousarray(bias, dtype=np.float32)
    return save(tensors, metadata={_METADATA_KEY: json.dumps(head.metadata(), ensure_ascii=False)})


def save_head(head: ClassifierHead, path: str | os.PathLike[str]) -> Path:
    """Write `head` as a safetensors file, atomically; returns the path."""
    target = Path(path)
    with atomic_binary_file(target) as stream:
        stream.write(head_bytes(head))
    return target


def load_head(path: str | os.PathLike[str]) -> ClassifierHead:
    """Read a head file; `HeadError` (one line naming the file) for anything that is not a valid head."""
    source = Path(path)
    try:
        with open(os.open(source, os.O_RDONLY | os.O_NONBLOCK), "rb") as stream:  # (a FIFO: refused, not waited on)
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise HeadError(f"{source}: not a regular file: a head is read from a file (.safetensors)")
            data = stream.read(MAX_HEAD_BYTES + 1)
    except FileNotFoundError:
        raise HeadError(f"{source}: no such head file") from None
    except IsADirectoryError:
        raise HeadError(f"{source}: is a folder, not a head file") from None
    except OSError as error:
        raise HeadError(f"{source}: cannot read the head file: {error.strerror or error}") from None
    if len(data) > MAX_HEAD_BYTES:
        raise HeadError(f"{source}: larger than {MAX_HEAD_BYTES >> 20} MiB: not a head file")
    meta = _head_metadata(_read_header(data, source))
    if meta is None:
        raise HeadError(f"{source}: a safetensors file, but not a dymn-cli head (no {_METADATA_KEY!r} metadata)")
    if meta.get("version") != HEAD_VERSION:
        raise HeadError(f"{source}: head format version {meta.get('version')!r}; this dymn-cli reads version {HEAD_VERSION}")
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as error:
        raise HeadError(f"{source}: damaged head file: {error}") from None
    try:
        backbone = meta["backbone"]
        layers = []
        while f"weight.{len(layers)}" in tensors:
            n = len(layers)
            layers.append((tensors[f"weight.{n}"], tensors[f"bias.{n}"]))
        return ClassifierHead(
            classes=tuple(meta["classes"]),
            backbone=Backbone(str(backbone["name"]), tuple(backbone["sha256"]), int(backbone["embedding_dim"])),
            mean=tensors["mean"],
            scale=tensors["scale"],
            layers=layers,
            activation=meta["activation"],
            window=float(meta["window"]),
            hop=float(meta["hop"]),
            sample_rate=int(meta["sample_rate"]),
            training=dict(meta.get("training") or {}),
            path=os.fspath(source),
        )
    except HeadError as error:
        raise HeadError(f"{source}: {error}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise HeadError(f"{source}: damaged head file ({type(error).__name__}: {error})") from None


def is_head_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a head file by its header's metadata (only the header is read): for the advice
    given where a head is passed as a checkpoint."""
    try:
        with open(path, "rb") as stream:
            prefix = stream.read(8)
            length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else 0
            header = _read_header(prefix + stream.read(min(length, _MAX_HEADER)), Path(path))
    except (OSError, HeadError):
        return False
    return _head_metadata(header) is not None


def _head_metadata(header: Mapping[str, Any]) -> dict[str, Any] | None:
    """The dymn-cli metadata of a safetensors header, or None where it holds none (another safetensors file)."""
    try:
        meta = json.loads(header.get("__metadata__", {}).get(_METADATA_KEY, "null"))
    except (AttributeError, TypeError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == HEAD_FORMAT else None


def _read_header(data: bytes, source: Path) -> Mapping[str, Any]:
    """The safetensors JSON header; anything else (a pickle above all) is refused without being parsed."""
    header: Any = None
    if len(data) >= 10:
        (length,) = struct.unpack("<Q", data[:8])
        if length <= min(_MAX_HEADER, len(data) - 8) and data[8:9] == b"{":
            try:
                header = json.loads(data[8 : 8 + length])
            except (UnicodeDecodeError, json.JSONDecodeError):
                header = None
    if isinstance(header, dict):
        return header
    if data[:1] == b"\x80" or data[:4] == b"PK\x03\x04" or data[:2] == b"\x1f\x8b":
        # pickle protocol 2+, a zip (torch.save, joblib archives) or gzip: never opened as objects
        raise HeadError(
            f"{source}: this is a pickle or archive (torch.save, joblib?), not a head file: pickles can run code "
            "when loaded and are refused; heads are safetensors files written by `dymn-tag train`"
        )
    raise HeadError(f"{source}: not a head file (heads are safetensors files written by `dymn-tag train`)")


def same_but_for_case(names: Sequence[str]) -> str | None:
    """The first two of `names` that are one name to a case-insensitive reader ('Dog' and 'dog'), or
    None. Such classes would be one column in SQL (DuckDB matches column names without case) and one
    class to --labels, which ignores case."""
    seen: dict[str, str] = {}
    for name in names:
        folded = name.casefold()
        if folded in seen:
            return f"{seen[folded]!r} and {name!r}"
        seen[folded] = name
    return None


def _validate(head: ClassifierHead) -> None:
    if not head.classes or not all(isinstance(c, str) and c.strip() for c in head.classes):
        raise HeadError("a head needs class names, none of them empty")
    same = same_but_for_case(head.classes)
    if same:
        raise HeadError(f"a head's class names must differ in more than case: {same}")
    if head.activation not in ACTIVATIONS:
        raise HeadError(f"unknown activation {head.activation!r}: use {' or '.join(ACTIVATIONS)}")
    if not head.layers:
        raise HeadError("a head needs at least one layer")
    width = head.mean.shape
    if head.mean.ndim != 1 or head.scale.shape != width:
        raise HeadError("the feature statistics must be two vectors of one length")
    if not (np.all(np.isfinite(head.mean)) and np.all(np.isfinite(head.scale)) and np.all(head.scale > 0)):
        raise HeadError("the feature statistics must be finite, the scales positive")
    inputs = width[0]
    for weight, bias in head.layers:
        if weight.ndim != 2 or weight.shape[0] != inputs or bias.shape != (weight.shape[1],):
            raise HeadError("the head's layers do not fit together")
        if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))):
            raise HeadError("the head's weights must be finite")
        inputs = weight.shape[1]
    if inputs != len(head.classes):
        raise HeadError(f"the head has {inputs} outputs for {len(head.classes)} classes")
    if head.backbone.embedding_dim != width[0]:
        raise HeadError("the backbone's embedding width differs from the feature statistics'")
    if not head.window > 0 or not head.hop > 0:
        raise HeadError("the window and hop must be positive")


def _short(hashes: Sequence[str]) -> str:
    return ", ".join(h[:12] for h in hashes) or "unknown"
