"""Runs as on a machine without torch: `no_torch_env(folder)` is the environment of a subprocess (and
of its decode workers) in which any import of torch (or of other packages named) fails as a missing
module does."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support import TESTS

BLOCK = """import sys

BLOCKED = {blocked!r}


class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Block())
"""


def no_torch_env(folder: Path, blocked: tuple[str, ...] = ("torch",)) -> dict[str, str]:
    """Environment additions (for `tests.support.dymn_tag(env=...)`): a sitecustomize that makes the
    `blocked` packages (torch) unimportable, as if they were not installed."""
    (folder / "sitecustomize.py").write_text(BLOCK.format(blocked=blocked))
    return {"PYTHONPATH": os.pathsep.join([str(folder), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
