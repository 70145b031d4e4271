"""The calibrated test checkpoints (tests/calibrated.py): loadable, sane on audio, float32 agrees with float64."""

from __future__ import annotations

import torch

from dymn_cli.models.build import build_model
from dymn_cli.models.frontend import LogMel
from tests.calibrated import calibrated_state_dict, calibration_waveforms
from tests.support import GOLDEN


def test_calibrated_checkpoint_keeps_every_key_and_only_changes_batchnorm_statistics(calibrated_weights) -> None:
    original = torch.load(GOLDEN / "dymn04_seed0.pt", weights_only=True)
    calibrated = torch.load(calibrated_weights("dymn04"), weights_only=True)
    assert list(calibrated) == list(original)
    changed = {k for k in original if not torch.equal(original[k], calibrated[k])}
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed)
    build_model(calibrated)  # strict


def test_calibrated_networks_are_sane_where_the_golden_ones_are_chaotic() -> None:
    mels = LogMel()(torch.from_numpy(calibration_waveforms(3.0)[3:6]))  # (a calibrated length)
    with torch.no_grad():
        chaotic, _ = build_model(torch.load(GOLDEN / "dymn04_seed0.pt", weights_only=True))(mels)
        model = build_model(calibrated_state_dict("dymn04"))
        logits, _ = model(mels)
        reference, _ = model.double()(mels.double())
    assert chaotic.abs().max() > 1e6  # what the random statistics do on this audio
    assert logits.abs().max() < 100
    # float32 rounding no longer decides the scores: float32 within 1e-5 of float64
    assert (torch.sigmoid(logits.double()) - torch.sigmoid(reference)).abs().max() < 1e-5
