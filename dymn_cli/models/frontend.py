"""Waveform -> log-mel front end of the published checkpoints (spec `dymn.md`, section 1).

A few lines of torch instead of torchaudio: the mel bank is the Kaldi construction that the authors'
code takes from `torchaudio.compliance.kaldi.get_mel_banks`, reproduced step for step in float32 so
that it matches theirs bit for bit on the same CPU.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dymn_cli.models.frontend_config import FrontEndConfig


def _mel(freq: float) -> float:
    return 1127.0 * math.log(1.0 + freq / 700.0)


def kaldi_mel_bank(config: FrontEndConfig = FrontEndConfig()) -> torch.Tensor:
    """Triangular mel filters `[n_mels, n_fft // 2 + 1]` in float32, Kaldi-style, last FFT bin zero."""
    num_fft_bins = config.n_fft // 2
    bin_width = config.sample_rate / config.n_fft
    mel_low, mel_high = _mel(config.f_min), _mel(config.f_max)
    mel_delta = (mel_high - mel_low) / (config.n_mels + 1)

    # Same operation order and dtypes as Kaldi/torchaudio: scalar end points in Python floats,
    # everything per bin in float32 tensors.
    index = torch.arange(config.n_mels).unsqueeze(1)
    left = mel_low + index * mel_delta
    center = mel_low + (index + 1.0) * mel_delta
    right = mel_low + (index + 2.0) * mel_delta
    bin_mels = (1127.0 * (1.0 + (bin_width * torch.arange(float(num_fft_bins))) / 700.0).log()).unsqueeze(0)
    up_slope = (bin_mels - left) / (center - left)
    down_slope = (right - bin_mels) / (right - center)
    bank = torch.max(torch.zeros(1), torch.min(up_slope, down_slope))
    return nn.functional.pad(bank, (0, 1), mode="constant", value=0.0)


def mel_bands(bank: torch.Tensor, groups: int = 8) -> list[tuple[int, int, int, int]]:
    """`(first filter, last filter + 1, first bin, last bin + 1)` for `groups` runs of consecutive filters:
    the FFT bins outside a run's range have zero weight in all of its filters."""
    nonzero = bank != 0
    bands = []
    for rows in torch.arange(bank.shape[0]).tensor_split(min(groups, bank.shape[0])):
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        bins = nonzero[r0:r1].any(dim=0).nonzero()
        b0, b1 = (int(bins[0]), int(bins[-1]) + 1) if len(bins) else (0, 0)
        bands.append((r0, r1, b0, b1))
    return bands


class LogMel(nn.Module):
    """`[B, N]` waveforms at 32 kHz -> `[B, 1, n_mels, frames]` normalised log-mels."""

    def __init__(self, config: FrontEndConfig = FrontEndConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.win_length, periodic=False), persistent=False)
        self.register_buffer("mel_bank", kaldi_mel_bank(config), persistent=False)
        # Each triangular filter spans a few bins: on the CPU the product is taken band by band, 1/8
        # of the dense multiply-adds (the skipped terms are exact zeros: only the summation order of
        # float32 roundings differs from the dense product).
        self.bands = mel_bands(self.mel_bank)

    def mel(self, power: torch.Tensor) -> torch.Tensor:
        """`[..., n_fft // 2 + 1, frames]` power spectra -> `[..., n_mels, frames]` mel energies."""
        bank = self.mel_bank.to(power.dtype)
        if power.device.type != "cpu":  # (on a GPU: one kernel launch, not eight; unmeasured)
            return torch.matmul(bank, power)
        return torch.cat([bank[r0:r1, b0:b1] @ power[..., b0:b1, :] for r0, r1, b0, b1 in self.bands], dim=-2)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        # The authors' valid conv1d with [-0.97, 1], as a difference: the same two roundings, and a
        # 2-tap conv1d is ~20x slower on CPU than this.
        x = waveforms[:, 1:] - self.config.preemphasis * waveforms[:, :-1]
        spec = torch.stft(
            x,
            self.config.n_fft,
            hop_length=self.config.hop_length,
            win_length=self.config.win_length,
            window=self.window.to(x.dtype),
            center=True,
            return_complex=True,
        )
        # re^2 + im^2 exactly as the authors' `(x ** 2).sum(-1)`; squaring the real view in one pass
        # is faster than squaring the strided .real and .imag views separately.
        squares = torch.view_as_real(spec).square()
        power = squares[..., 0] + squares[..., 1]
        # The mel product stays in float32 even under autocast: the models were trained that way.
        with torch.autocast(device_type=power.device.type, enabled=False):
            mels = self.mel(power)
        return ((mels + 1e-5).log() + 4.5).div(5.0).unsqueeze(1)
