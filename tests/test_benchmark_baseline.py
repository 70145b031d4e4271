"""The benchmarks' baseline (the authors' formulation, `benchmarks/authors_reference.py`) is a correct model:
it reproduces the golden front end and network outputs, so the speed-ups measured against it are real."""

from __future__ import annotations

import copy

import pytest
import torch

from benchmarks.authors_reference import AuthorsLogMel, authors_dymn_forward
from dymn_cli.models.build import build_model
from tests.support import GOLDEN

LOGMEL_TOL = 5e-4  # golden README


@pytest.fixture(scope="module")
def frontend() -> dict:
    return torch.load(GOLDEN / "frontend.pt")


def test_front_end_matches_golden(frontend):
    waves = torch.stack([frontend["waves"][k] for k in sorted(frontend["waves"])])
    with torch.no_grad():
        mels = AuthorsLogMel()(waves)
    expected = torch.cat([frontend["mels"][k] for k in sorted(frontend["mels"])])
    assert mels.shape == expected.shape == (3, 128, 1000)
    assert (mels - expected).abs().max() < LOGMEL_TOL


@pytest.mark.parametrize("name", ["dymn04", "dymn10"])
def test_network_matches_golden(name, frontend):
    model = build_model(torch.load(GOLDEN / f"{name}_seed0.pt"))
    cases = torch.load(GOLDEN / f"{name}_cases.pt")
    mels = torch.cat([frontend["mels"][k] for k in sorted(frontend["mels"])])[:, None]
    with torch.no_grad():
        logits, embedding = authors_dymn_forward(model, mels)
        one_logits, _ = authors_dymn_forward(model, mels[1:2])  # batch 1, as the baseline runs it
    torch.testing.assert_close(logits, cases["f32_T1000"]["logits"], rtol=0, atol=1e-3)
    torch.testing.assert_close(embedding, cases["f32_T1000"]["embedding"], rtol=0, atol=1e-3)
    torch.testing.assert_close(one_logits, cases["f32_T1000"]["logits"][1:2], rtol=0, atol=1e-3)
    model64 = copy.deepcopy(model).double()
    for case in ("f64_T1000", "f64_T9"):
        expected = cases[case]
        with torch.no_grad():
            logits64, _ = authors_dymn_forward(model64, expected["input"])
        scale = expected["logits"].abs().max().item()
        torch.testing.assert_close(logits64, expected["logits"], rtol=0, atol=1e-7 * scale)
