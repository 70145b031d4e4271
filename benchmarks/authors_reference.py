"""The authors' inference path, re-implemented as the baseline that the benchmarks measure against.

EfficientAT's windowed tagging example runs, for every 10 s window at batch 1 under `torch.no_grad`:
- the front end `AugmentMelSTFT` in eval mode: pre-emphasis as a 2-tap `conv1d`, `torch.stft`, power as
  `(real_view ** 2).sum(-1)`, the Kaldi mel bank rebuilt on every call, matmul, log, normalisation;
- the DyMN network as written for training: every BatchNorm a separate pass over its feature map; each
  dynamic convolution mixes its 4 kernels with `attention @ weight` and folds the batch into the
  convolution groups; the context generator with 2-D pooling, concatenation, split and permutes of
  4-D maps; Dy-ReLU through a 5-D `[B, C, F, T, 2]` tensor; coordinate attention as two multiplies.

This module computes exactly that, written from the specification and those formulation choices, on the
parameters of this project's module tree (so the same checkpoint loads, `strict=True`). It reproduces the
golden outputs (`tests/test_benchmark_baseline.py`), so the baseline is a correct model, not a straw man.
Nothing here is used by `dymn_cli`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dymn_cli.models.common import ConvNormAct
from dymn_cli.models.dymn import ContextGen, DyBlock, DyMN, DynamicConv, DyReLU
from dymn_cli.models.frontend import FrontEndConfig, kaldi_mel_bank

TEMPERATURE = 1.0  # the authors' loader sets it for the AudioSet checkpoints; they still divide by it


class AuthorsLogMel(nn.Module):
    """`[B, N]` waveforms -> `[B, 128, frames]` log-mels, computed as the authors' `AugmentMelSTFT` (eval)."""

    def __init__(self, config: FrontEndConfig = FrontEndConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.win_length, periodic=False), persistent=False)
        self.register_buffer("preemphasis", torch.tensor([[[-config.preemphasis, 1.0]]]), persistent=False)

    def forward(self, waveforms: Tensor) -> Tensor:
        c = self.config
        x = F.conv1d(waveforms.unsqueeze(1), self.preemphasis).squeeze(1)
        spec = torch.stft(
            x,
            c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            center=True,
            normalized=False,
            window=self.window,
            return_complex=True,
        )
        power = (torch.view_as_real(spec) ** 2).sum(dim=-1)
        mel_bank = kaldi_mel_bank(c)  # rebuilt on every call, as torchaudio's get_mel_banks is there
        mels = torch.matmul(mel_bank, power)
        return ((mels + 0.00001).log() + 4.5) / 5.0


def _batch_norm(x: Tensor, norm: nn.BatchNorm2d) -> Tensor:
    return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)


def _conv_norm_act(x: Tensor, layer: ConvNormAct) -> Tensor:
    conv = layer[0]
    x = _batch_norm(F.conv2d(x, conv.weight, None, conv.stride, conv.padding, groups=conv.groups), layer[1])
    return layer[2](x) if len(layer) > 2 else x


def _context(x: Tensor, gen: ContextGen, stride: int) -> tuple[Tensor, Tensor, Tensor]:
    cf = F.adaptive_avg_pool2d(x, (None, 1))
    ct = F.adaptive_avg_pool2d(x, (1, None)).permute(0, 1, 3, 2)
    f, t = cf.size(2), ct.size(2)
    z = torch.cat([cf, ct], dim=2)
    z = F.hardswish(_batch_norm(gen.joint_conv(z), gen.joint_norm))
    zf, zt = torch.split(z, [f, t], dim=2)
    zt = zt.permute(0, 1, 3, 2)
    h = torch.mean(z, dim=2, keepdim=True)
    if stride > 1:
        zf = F.avg_pool2d(zf, (3, 1), (stride, 1), (1, 0))
        zt = F.avg_pool2d(zt, (1, 3), (1, stride), (0, 1))
    return h, gen.conv_f(zf), gen.conv_t(zt)


def _dynamic_conv(x: Tensor, conv: DynamicConv, h: Tensor) -> Tensor:
    b, _, f, t = x.size()
    attention = torch.softmax(conv.residuals(h.view(b, -1)).view(b, 1, 1, -1) / TEMPERATURE, dim=-1)
    k = conv.kernel_size
    kernels = (attention @ conv.weight).transpose(1, 2).reshape(b, conv.out_channels, conv.in_channels // conv.groups, k, k)
    kernels = kernels.view(b * conv.out_channels, conv.in_channels // conv.groups, k, k)
    out = F.conv2d(x.view(1, -1, f, t), kernels, None, conv.stride, conv.padding, groups=conv.groups * b)
    return out.view(b, conv.out_channels, out.size(-2), out.size(-1))


def _dyrelu(x: Tensor, act: DyReLU, h: Tensor) -> Tensor:
    theta = 2 * torch.sigmoid(act.coef_net(h.view(x.size(0), -1))) - 1
    coefs = theta.view(-1, act.channels, 1, 1, 4) * act.lambdas + act.init_v
    mapped = x.unsqueeze(-1) * coefs[:, :, :, :, :2] + coefs[:, :, :, :, 2:]
    return torch.maximum(mapped[:, :, :, :, 0], mapped[:, :, :, :, 1])


def _block(x: Tensor, block: DyBlock) -> Tensor:
    h, g_f, g_t = _context(x, block.context_gen, block.depth_conv.stride)
    out = x
    if block.expand:
        out = block.exp_act(_batch_norm(_dynamic_conv(out, block.exp_conv, h), block.exp_norm))
    out = _dyrelu(_batch_norm(_dynamic_conv(out, block.depth_conv, h), block.depth_norm), block.depth_act, h)
    out = out * g_f.sigmoid() * g_t.sigmoid()
    out = _batch_norm(_dynamic_conv(out, block.proj_conv, h), block.proj_norm)
    if block.use_residual:
        out += x
    return out


def authors_dymn_forward(model: DyMN, mels: Tensor) -> tuple[Tensor, Tensor]:
    """Logits `[B, 527]` and embedding `[B, C]` for log-mels `[B, 1, 128, T]`, the authors' way."""
    x = _conv_norm_act(mels, model.in_c)
    for block in model.layers:
        x = _block(x, block)
    x = _conv_norm_act(x, model.out_c)
    embedding = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
    logits = model.classifier(x)  # pools again, as their head does
    return logits, embedding
