"""How outputs name the network that wrote them (dymn_cli.models.identity), known before it loads."""

from __future__ import annotations

import shutil

import pytest

from dymn_cli.errors import UsageError, WeightsError
from dymn_cli.models.identity import identify, model_label, same_label
from tests.support import GOLDEN


def test_a_published_model_by_its_name_a_local_file_by_its_name_and_content(tmp_path):
    assert model_label(identify("DyMN10_AS, mn04_as", None)) == "dymn10_as,mn04_as"
    copy = tmp_path / "mine.pt"
    shutil.copy(GOLDEN / "dymn04_seed0.pt", copy)
    original, renamed = identify(None, GOLDEN / "dymn04_seed0.pt")[0], identify(None, [copy])[0]
    assert original.label == "dymn04_seed0.pt@sha256:7f196060a893" and renamed.label == "mine.pt@sha256:7f196060a893"
    assert renamed.file == str(copy) and renamed.same_network(original)  # (the content counts, not the name)
    assert not renamed.same_network(identify(None, GOLDEN / "mn04_seed0.pt")[0])
    with pytest.raises(WeightsError, match="weights file not found: nothing.pt"):
        identify(None, "nothing.pt")
    with pytest.raises(UsageError, match="unknown model"):
        identify("dymn99", None)


def test_an_output_of_the_release_before_names_a_local_file_by_its_stem():
    label = "dymn04_seed0.pt@sha256:7f196060a893"
    assert same_label(label, label) and same_label("dymn04_seed0", label) and same_label("DYMN10_AS", "dymn10_as")
    assert not same_label("mn04_seed0", label) and not same_label(None, label) and not same_label("dymn04_seed0.pt", label)
