"""The checkpoint the weights tests (tests/models/test_weights_*.py) publish on a loopback release, under
which name and file name, and what a download leaves in the cache."""

from __future__ import annotations

from pathlib import Path

from tests.support import GOLDEN

SOURCE = GOLDEN / "dymn04_seed0.pt"
NAME = "dymn04_as"
FILENAME = "dymn04_as.pt"


def leftovers(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir()} if cache.exists() else set()
