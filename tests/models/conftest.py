"""Fixtures of the weights tests (tests/models/test_weights_*.py): the published checkpoint's hash, and
a real loopback HTTP release with an empty cache."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from tests.http_server import serve_directory
from tests.models.release_files import FILENAME, SOURCE


@pytest.fixture(scope="module")
def source_sha256() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


@pytest.fixture
def release(tmp_path_factory, monkeypatch):
    """A loopback release serving the golden DyMN-0.4 state dict as `dymn04_as.pt`, and an empty cache."""
    root = tmp_path_factory.mktemp("release")
    shutil.copyfile(SOURCE, root / FILENAME)
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("DYMN_CACHE_DIR", str(cache))
    with serve_directory(root) as server:
        monkeypatch.setenv("DYMN_RELEASE_URL", server.url)
        server.cache = cache
        yield server
