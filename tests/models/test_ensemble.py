"""MN through the tagger, and ensembles: averaged logits, concatenated embeddings, one front end."""

import numpy as np
import pytest
import torch

from dymn_cli import Tagger
from dymn_cli.errors import UsageError
from dymn_cli.models.build import build_model
from dymn_cli.models.checkpoints import load_checkpoint
from dymn_cli.models.ensemble import Ensemble, split_names
from dymn_cli.models.frontend import LogMel


def test_mn04_windows_match_golden(golden_dir, frontend_golden):
    case = torch.load(golden_dir / "mn04_cases.pt")["f32_windows_w10_h2.5"]
    tagger = Tagger(weights=golden_dir / "mn04_seed0.pt", device="cpu")
    result = tagger.tag(frontend_golden["long_23.7s"], sample_rate=32_000, window=10.0, hop=2.5)
    np.testing.assert_allclose(result.starts, case["starts"].numpy())
    assert np.abs(result.window_scores - case["probs"].numpy()).max() < 2e-4
    assert np.abs(result.embeddings - case["embeddings"].numpy()).max() < 1e-3


def test_ensemble_averages_member_logits(golden_dir, frontend_golden):
    paths = [golden_dir / "dymn04_seed0.pt", golden_dir / "mn04_seed0.pt"]
    tagger = Tagger(weights=paths, device="cpu")
    assert isinstance(tagger.network, Ensemble)
    wave = frontend_golden["long_23.7s"]
    result = tagger.tag(wave, sample_rate=32_000, window=10.0, hop=5.0)

    windows = torch.stack(
        [torch.nn.functional.pad(wave[s : s + 320_000], (0, max(0, s + 320_000 - len(wave)))) for s in range(0, 480_001, 160_000)]
    )
    mels = LogMel()(windows)
    members = [build_model(load_checkpoint(p)) for p in paths]
    with torch.inference_mode():
        outputs = [m(mels) for m in members]
    logits = torch.stack([o[0] for o in outputs]).mean(0)
    np.testing.assert_allclose(result.window_scores, torch.sigmoid(logits).numpy(), atol=1e-5)
    np.testing.assert_allclose(result.embeddings, torch.cat([o[1] for o in outputs], 1).numpy(), atol=1e-5)
    assert result.embeddings.shape == (4, 384 + 384)


def test_split_names():
    assert split_names("mn40_as, dymn20_as") == ["mn40_as", "dymn20_as"]
    assert split_names(["a", "b"]) == ["a", "b"]
    with pytest.raises(UsageError):
        split_names(" , ")


def test_ensemble_of_registry_names_from_a_loopback_mirror(tmp_path, monkeypatch, golden_dir, frontend_golden):
    import shutil

    from tests.http_server import serve_directory

    shutil.copy(golden_dir / "dymn04_seed0.pt", tmp_path / "dymn04_as.pt")
    shutil.copy(golden_dir / "mn04_seed0.pt", tmp_path / "mn04_as_mAP_432.pt")
    with serve_directory(tmp_path) as server:
        monkeypatch.setenv("DYMN_RELEASE_URL", server.url)
        by_name = Tagger("dymn04_as,mn04_as", device="cpu")
    by_path = Tagger(weights=[tmp_path / "dymn04_as.pt", tmp_path / "mn04_as_mAP_432.pt"], device="cpu")
    wave = frontend_golden["short_3.3s"]
    np.testing.assert_array_equal(by_name.tag(wave, sample_rate=32_000).scores, by_path.tag(wave, sample_rate=32_000).scores)
    assert by_name.name == "dymn04_as,mn04_as"
