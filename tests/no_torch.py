"""Runs as on a machine without torch: `no_torch_env(folder)` is the environment of a subprocess (and
of its decode workers) in which any import of torch fails as a missing module does."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support import TESTS

BLOCK_TORCH = """import sys


class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, BlockTorch())
"""


def no_torch_env(folder: Path) -> dict[str, str]:
    """Environment additions (for `tests.support.dymn_tag(env=...)`): a sitecustomize that blocks torch."""
    (folder / "sitecustomize.py").write_text(BLOCK_TORCH)
    return {"PYTHONPATH": os.pathsep.join([str(folder), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
