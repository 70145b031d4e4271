"""The checkpoint registry (names, URLs, frozen records, suggestions, parameter counts) and the cache
directory's precedence.
"""

from __future__ import annotations

import math

import pytest

from dymn_cli.errors import UsageError
from dymn_cli.models import weights
from dymn_cli.models.checkpoints import resolve_weights
from dymn_cli.models.frontend import FrontEndConfig
from dymn_cli.models.weights import REGISTRY, get_record
from tests.support import GOLDEN


def test_registry_lists_the_published_audioset_checkpoints():
    assert list(REGISTRY) == [
        "dymn04_as", "dymn10_as", "dymn20_as",
        "mn01_as", "mn02_as", "mn04_as", "mn05_as", "mn10_as", "mn20_as", "mn30_as", "mn40_as", "mn40_as_ext",
    ]  # fmt: skip
    for name, record in REGISTRY.items():
        assert record.name == name
        assert record.frontend == FrontEndConfig()
        assert record.sha256 is None  # the release publishes none; never invent one
        assert record.filename.startswith(name) and record.filename.endswith(".pt")
        assert record.family == ("dymn" if name.startswith("dymn") else "mn")
        if "_mAP_" in record.filename:  # the mAP in the file name is the record's
            assert record.map == int(record.filename.split("_mAP_")[1][:3]) / 1000
    assert [REGISTRY[n].width for n in ("dymn04_as", "dymn10_as", "dymn20_as")] == [0.4, 1.0, 2.0]
    assert [r.width for r in REGISTRY.values() if r.family == "mn"] == [0.1, 0.2, 0.4, 0.5, 1.0, 2.0, 3.0, 4.0, 4.0]


def test_url_follows_the_release_and_its_override(monkeypatch):
    monkeypatch.delenv("DYMN_RELEASE_URL", raising=False)
    assert get_record("dymn20_as").url == (
        "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/dymn20_as_mAP_493.pt"
    )
    monkeypatch.setenv("DYMN_RELEASE_URL", "http://mirror.example/efficientat")  # no trailing slash
    assert get_record("mn10_as").url == "http://mirror.example/efficientat/mn10_as_mAP_471.pt"


def test_records_are_frozen():
    with pytest.raises(AttributeError):
        get_record("mn10_as").width = 2.0  # type: ignore[misc]


def test_unknown_name_is_a_usage_error_with_a_suggestion():
    with pytest.raises(UsageError) as info:
        get_record("dymn10_sa")
    message = str(info.value)
    assert "did you mean 'dymn10_as'" in message
    assert "mn40_as_ext" in message and "\n" not in message
    assert get_record(" DyMN10_AS ") is REGISTRY["dymn10_as"]
    with pytest.raises(UsageError, match="known models"):
        resolve_weights(model="resnet50")


def _parameters_in_golden_listing(stem: str) -> int:
    total = 0
    for line in (GOLDEN / f"{stem}_state_dict.txt").read_text().splitlines():
        key, shape, _ = line.split("\t")
        if key.rsplit(".", 1)[-1] not in {"running_mean", "running_var", "num_batches_tracked", "lambdas", "init_v"}:
            total += math.prod(int(d) for d in shape.strip("()").split(",") if d.strip())
    return total


@pytest.mark.parametrize("name", ["dymn04_as", "dymn20_as", "mn01_as", "mn40_as"])
def test_num_params_counts_the_architecture(name):
    record = get_record(name)
    assert record.num_params == _parameters_in_golden_listing(name.removesuffix("_as"))


# --- cache directory ---------------------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DYMN_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert weights.cache_dir() == tmp_path / "home" / ".cache" / "dymn-cli"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert weights.cache_dir() == tmp_path / "home" / ".cache" / "dymn-cli"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_dir() == tmp_path / "xdg" / "dymn-cli"
    monkeypatch.setenv("DYMN_CACHE_DIR", str(tmp_path / "mine"))
    assert weights.cache_dir() == tmp_path / "mine"
    assert not any(tmp_path.iterdir())  # asking never creates anything
