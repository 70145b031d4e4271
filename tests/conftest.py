from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.support import GOLDEN


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture(scope="session")
def frontend_golden() -> dict:
    return torch.load(GOLDEN / "frontend.pt")


@pytest.fixture(scope="session")
def dymn04_weights() -> Path:
    return GOLDEN / "dymn04_seed0.pt"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may read or fill the user's real model cache, or reach the real release URL."""
    monkeypatch.setenv("DYMN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("DYMN_RELEASE_URL", "http://127.0.0.1:9/unreachable/")


@pytest.fixture(scope="session")
def calibrated_weights() -> Callable[[str], Path]:
    """`calibrated_weights("dymn04")`: the golden checkpoint with BatchNorm statistics measured on real
    audio (tests/calibrated.py), as a .pt file made once per session (per worker). Use it for every
    agreement figure (ONNX, int8, float16 against float32)."""
    from tests.calibrated import calibrated_checkpoint

    return calibrated_checkpoint
