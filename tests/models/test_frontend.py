"""The log-mel front end against the authors' golden mel bank and log-mels."""

import pytest
import torch

from dymn_cli.models.frontend import FrontEndConfig, LogMel, kaldi_mel_bank, mel_bands

# Golden README: mel bank within 5e-5, log-mels within 5e-4 (one float32 ulp of `log` differs between CPUs).
MELBANK_TOL = 5e-5
LOGMEL_TOL = 5e-4


def test_mel_bank_matches_golden(frontend_golden):
    bank = kaldi_mel_bank()
    assert bank.shape == (128, 513) and bank.dtype == torch.float32
    assert torch.all(bank[:, -1] == 0)
    assert (bank - frontend_golden["melbank"]).abs().max() < MELBANK_TOL


@pytest.mark.parametrize("name", ["wave0_10s", "wave1_10s", "wave2_10s"])
def test_logmels_match_golden(frontend_golden, name):
    mels = LogMel()(frontend_golden["waves"][name][None])
    assert mels.shape == (1, 1, 128, 1000)
    assert (mels[:, 0] - frontend_golden["mels"][name]).abs().max() < LOGMEL_TOL


def test_short_waveform_logmels_match_golden(frontend_golden):
    mels = LogMel()(frontend_golden["short_3.3s"][None])
    assert mels.shape[-1] == FrontEndConfig().frames(105600) == 330
    assert (mels[:, 0] - frontend_golden["short_3.3s_mel"]).abs().max() < LOGMEL_TOL


def test_batch_equals_one_by_one(frontend_golden):
    waves = torch.stack(list(frontend_golden["waves"].values()))
    batched = LogMel()(waves)
    single = torch.cat([LogMel()(w[None]) for w in waves])
    assert torch.allclose(batched, single, atol=1e-6)


def test_banded_mel_product_equals_the_dense_one():
    """The CPU takes the mel product band by band: every nonzero weight lies inside its filter's band,
    and the result equals the dense product up to float32 summation order."""
    frontend = LogMel()
    bank = frontend.mel_bank
    covered = torch.zeros_like(bank, dtype=torch.bool)
    for r0, r1, b0, b1 in mel_bands(bank):
        covered[r0:r1, b0:b1] = True
    assert covered[bank != 0].all() and covered.sum() < bank.numel() / 6
    power = torch.rand(2, 513, 300) * 10.0
    torch.testing.assert_close(frontend.mel(power), bank @ power, rtol=1e-5, atol=1e-6)
    assert mel_bands(torch.zeros(4, 10), groups=2) == [(0, 2, 0, 0), (2, 4, 0, 0)]
    assert mel_bands(torch.eye(3), groups=8) == [(0, 1, 0, 1), (1, 2, 1, 2), (2, 3, 2, 3)]  # fewer filters than groups
