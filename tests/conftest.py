from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from tests.support import DYMN04_WEIGHTS, GOLDEN

if TYPE_CHECKING:
    from dymn_cli import Tagger


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


@pytest.fixture
def one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One torch thread per process, here and in the `dymn-tag` runs: these tests run several processes
    at once on few cores, where OpenMP threads spin-waiting for each other cost ten times over (the
    200-file run: 3 s with one thread each, 40 to 60 s with two on a loaded 2-core machine).
    The reliability tests ask for it with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    """The model as the CLI builds it from `--weights` (the golden DyMN-0.4 checkpoint; batch size 1: results
    do not depend on batching). Modules that need another model define their own `tagger`."""
    from dymn_cli import Tagger

    return Tagger(None, weights=[str(DYMN04_WEIGHTS)], device="cpu", batch_size=1)
