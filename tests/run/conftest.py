"""Fixtures of the hostile-input tests (tests/run/test_hostile_*.py, test_stalled_inputs,
test_unusable_checkpoints): two good files, and the golden DyMN-0.4 model as the API builds it."""

from __future__ import annotations

import os

import pytest

from dymn_cli import Tagger
from tests.audio_factory import make_audio_file
from tests.run.hostile_runs import WEIGHTS


@pytest.fixture(scope="module")
def two_files(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("two")
    return (
        os.fspath(make_audio_file(folder / "a.wav", seconds=1.0)),
        os.fspath(make_audio_file(folder / "b.flac", seconds=1.0)),
    )


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    """The golden DyMN-0.4 checkpoint through the API, four windows a batch (this folder's own, not
    tests/conftest.py's)."""
    return Tagger(None, weights=[WEIGHTS], device="cpu", batch_size=4)
