"""What many test modules share: where the golden files are, and running the real `dymn-tag`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from dymn_cli.results import TagFailure, TagResult
from dymn_cli.tagging import AudioTagger

TESTS = Path(__file__).parent
GOLDEN = TESTS / "golden"
DYMN04_WEIGHTS = GOLDEN / "dymn04_seed0.pt"
EXAMPLES = TESTS.parent / "examples"

SAFETY_NET = 600
"""Seconds after which a test gives up on a process or an event: only a hung run gets there. Tests wait
for events (a line, an exit), never for the clock, so a busy machine slows them without failing them."""

DYMN_TAG = shutil.which("dymn-tag", path=str(Path(sys.executable).parent)) or "dymn-tag"
"""The `dymn-tag` installed beside this interpreter (the project's entry point, not another copy on PATH)."""


def dymn_tag(
    args: list[str],
    *,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = SAFETY_NET,
    **kwargs,
) -> subprocess.CompletedProcess:
    """Run `dymn-tag ARGS` to the end, capturing stdout and stderr (bytes); `env` adds to the environment."""
    return subprocess.run(
        [DYMN_TAG, *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


class FakeTagger(AudioTagger):
    """Deterministic scores from the path; 'broken' inputs fail. `stop_after`: interrupt after n inputs."""

    name = "fake"
    sample_rate = 32_000

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after

    def tag_many(self, sources, **_: object):
        for n, source in enumerate(sources):
            if n == self.stop_after:
                raise KeyboardInterrupt
            if "broken" in source:
                yield TagFailure(source, f"{source}: not audio")
                continue
            seed = int.from_bytes(hashlib.sha1(source.encode()).digest()[:4], "big")
            scores = np.random.default_rng(seed).random(527).astype(np.float32)
            yield TagResult(source, 1.5, scores, np.zeros(1), np.full(1, 10.0), scores[None], np.zeros((1, 4), np.float32))
