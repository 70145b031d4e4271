"""Fixtures of the classification-head tests (tests/transfer/test_head_*.py): the mn04 backbone, a
dataset of synthetic classes, and a head trained on it once for the folder (package scope)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dymn_cli.models.head import save_head
from dymn_cli.tagger import Tagger
from dymn_cli.transfer import TrainingSettings, read_training_data, train_head
from tests.transfer.synthetic_classes import CLASSES, HOP, WINDOW, synthetic, write


@pytest.fixture(scope="package")
def weights(golden_dir) -> str:
    return str(golden_dir / "mn04_seed0.pt")


@pytest.fixture(scope="package")
def tagger(weights) -> Tagger:
    return Tagger(weights=weights, device="cpu")


@pytest.fixture(scope="package")
def dataset(tmp_path_factory) -> tuple[Path, dict[str, list[Path]]]:
    """`train/<class>/*.wav` (6 files a class) and held-out files of other variants (3 a class)."""
    root = tmp_path_factory.mktemp("heads")
    held_out: dict[str, list[Path]] = {}
    for kind in CLASSES:
        for variant in range(6):
            write(root / "train" / kind / f"{variant}.wav", synthetic(kind, variant))
        held_out[kind] = [write(root / "test" / f"{kind}{v}.wav", synthetic(kind, v, seed=7)) for v in range(6, 9)]
    return root, held_out


@pytest.fixture(scope="package")
def trained(dataset, tagger) -> tuple[Path, object]:
    root, _ = dataset
    report = train_head(read_training_data(root / "train"), tagger, TrainingSettings(window=WINDOW, hop=HOP, folds=3, workers=0))
    path = save_head(report.head, root / "sounds.safetensors")
    return path, report
