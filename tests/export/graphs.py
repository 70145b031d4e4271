"""Graphs exported once per test session from the calibrated checkpoints (tests/calibrated.py), with
the torch engine that they must reproduce, and the head file for the head case."""

from __future__ import annotations

import copy
import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dymn_cli.export.api import export_onnx
from dymn_cli.inference.engine import InferenceEngine
from dymn_cli.models.ensemble import load_members
from dymn_cli.models.frontend import LogMel
from dymn_cli.models.head import Backbone, ClassifierHead, save_head
from dymn_cli.models.weights import sha256_file
from tests.calibrated import calibrated_checkpoint

ENSEMBLE = ("dymn04", "mn04")
HEAD_CLASSES = ("kettle", "tram bell", "door")


@dataclass
class Exported:
    path: Path
    weights: list[Path]
    engine: InferenceEngine
    head: ClassifierHead | None = None

    def reference(self, waveforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the torch engine gives: (scores, embeddings); scores after the activation."""
        return self.scores(*self.engine(waveforms))

    def exact(self, waveforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same in float64 (front end and network): what float32 rounding departs from."""
        network = copy.deepcopy(self.engine.model).double()
        with torch.inference_mode():
            logits, embeddings = network(LogMel()(torch.from_numpy(waveforms).double()))
        return self.scores(logits.numpy(), embeddings.numpy())

    def scores(self, logits: np.ndarray, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.head is not None:
            return scores_of(self.head.logits(embeddings), self.head.activation), embeddings
        return scores_of(logits, "sigmoid"), embeddings


def scores_of(logits: np.ndarray, activation: str) -> np.ndarray:
    logits = logits.astype(np.float64)
    if activation == "softmax":
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))


@functools.cache
def folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="dymn-export-tests-"))


def make_head(weights: Path, embedding_dim: int) -> Path:
    rng = np.random.default_rng(5)
    head = ClassifierHead(
        classes=HEAD_CLASSES,
        backbone=Backbone(weights.stem, (sha256_file(weights),), embedding_dim),
        mean=rng.normal(0, 0.1, embedding_dim),
        scale=rng.uniform(0.5, 2.0, embedding_dim),
        layers=[
            (rng.normal(0, 0.2, (embedding_dim, 16)).astype(np.float32), rng.normal(0, 0.1, 16).astype(np.float32)),
            (rng.normal(0, 0.5, (16, len(HEAD_CLASSES))).astype(np.float32), np.zeros(len(HEAD_CLASSES), np.float32)),
        ],
        activation="softmax",
        window=3.0,
        hop=1.5,
    )
    return save_head(head, folder() / "head.safetensors")


@functools.cache
def exported(case: str) -> Exported:
    """`dymn04`, `dymn10`, `mn04`, `ensemble` (dymn04 + mn04) or `head` (dymn04 with a head)."""
    names = ENSEMBLE if case == "ensemble" else ("dymn04",) if case == "head" else (case,)
    weights = [calibrated_checkpoint(name, folder()) for name in names]
    network = load_members(model=None, weights=[str(w) for w in weights]).network
    engine = InferenceEngine(network, device="cpu", lanes=1)
    head_path = make_head(weights[0], network.embedding_dim) if case == "head" else None
    path = folder() / f"{case}.onnx"
    export_onnx(path, weights=weights, head=head_path)
    from dymn_cli.models.head import load_head

    return Exported(path, weights, engine, load_head(head_path) if head_path else None)
