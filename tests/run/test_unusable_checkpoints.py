"""Checkpoints that cannot label AudioSet, and network outputs that are not numbers (#14).

A classifier without 527 outputs is refused, --sha256 with several checkpoints is refused, and a NaN
or infinite output fails its input (locally and in the Ray runner's assembly), never a NaN score.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dymn_cli import Tagger
from dymn_cli.tagger import TagFailure
from tests.run.hostile_runs import WEIGHTS, assert_clean_stderr, dymn_tag
from tests.support import SAFETY_NET


@pytest.mark.slow
def test_a_classifier_without_527_outputs_is_refused(tmp_path, two_files):
    from dymn_cli.models.build import create_model

    path = tmp_path / "ten.pt"
    torch.save(create_model(family="mn", width=0.1, num_classes=10).state_dict(), path)
    done = dymn_tag(["--weights", str(path), "--device", "cpu", two_files[0]], timeout=SAFETY_NET)
    assert done.returncode == 1
    assert "its classifier has 10 outputs, not the 527 AudioSet classes" in assert_clean_stderr(done.stderr)


@pytest.mark.slow
def test_sha256_with_several_checkpoints_is_refused_not_ignored(two_files):
    done = dymn_tag(["--weights", WEIGHTS, "--weights", WEIGHTS, "--sha256", "0" * 64, two_files[0]], timeout=SAFETY_NET)
    assert done.returncode == 2
    assert "--sha256 is the hash of one checkpoint, and 2 were given" in assert_clean_stderr(done.stderr)


def test_a_network_output_that_is_not_a_number_fails_the_input_never_a_nan_score(tmp_path, two_files):
    state = torch.load(WEIGHTS)
    state["classifier.5.bias"][3] = float("nan")
    broken = tmp_path / "nan.pt"
    torch.save(state, broken)
    tagger = Tagger(None, weights=[str(broken)], device="cpu")
    (outcome,) = tagger.tag_many([two_files[0]], window=1.0, hop=1.0)
    assert isinstance(outcome, TagFailure) and "not a number" in outcome.reason
    from dymn_cli.run.runner import RunSettings, label_inputs

    out = tmp_path / "x.json"
    summary = label_inputs([two_files[0]], tagger=tagger, output=out, settings=RunSettings(window=1.0, hop=1.0, workers=0))
    assert summary.failed == 1 and summary.exit_code == 1
    json.loads(out.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))


def test_the_ray_runner_shares_the_check_for_outputs_that_are_not_numbers():
    """The local pipeline and the Ray runner's assembly keep windows through `PendingInput.add_window`."""
    from dymn_cli.inference.pipeline import Failure, PendingInput

    state = PendingInput(expected=2)
    state.add_window(0, np.zeros(527, np.float32), np.zeros(8, np.float32))
    state.add_window(1, np.full(527, np.inf, np.float32), np.zeros(8, np.float32))
    assert state.complete()
    outcome = state.outcome(0)
    assert isinstance(outcome, Failure) and "not a number" in outcome.reason and "window 1" in outcome.reason
