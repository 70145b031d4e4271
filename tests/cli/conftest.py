"""Fixtures of the CLI tests: the golden DyMN-0.4 checkpoint as `--weights` (the live-stream tests)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def weights(golden_dir) -> str:
    return str(golden_dir / "dymn04_seed0.pt")
