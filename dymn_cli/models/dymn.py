"""DyMN: MobileNetV3 with dynamic blocks (spec `dymn.md`, section 2), as in the published checkpoints.

Every submodule name below is a checkpoint key; the registration order reproduces the authors' state dict
order (the blocks come before `in_c` there, because the authors create `layers` first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dymn_cli.models.common import ConvNormAct, TaggingNet, batch_norm, classifier_head, md

# (in, kernel, expanded, out, hardswish, stride) before width scaling, spec section 2.
BLOCK_SETTINGS: tuple[tuple[int, int, int, int, bool, int], ...] = (
    (16, 3, 16, 16, False, 1),
    (16, 3, 64, 24, False, 2),
    (24, 3, 72, 24, False, 1),
    (24, 5, 72, 40, False, 2),
    (40, 5, 120, 40, False, 1),
    (40, 5, 120, 40, False, 1),
    (40, 3, 240, 80, True, 2),
    (80, 3, 200, 80, True, 1),
    (80, 3, 184, 80, True, 1),
    (80, 3, 184, 80, True, 1),
    (80, 3, 480, 112, True, 1),
    (112, 3, 672, 112, True, 1),
    (112, 5, 672, 160, True, 2),
    (160, 5, 960, 160, True, 1),
    (160, 5, 960, 160, True, 1),
)

NUM_KERNELS = 4  # kernels mixed by each dynamic convolution
DYRELU_M = 2  # linear pieces of Dy-ReLU


@dataclass(frozen=True)
class BlockConfig:
    in_channels: int
    kernel: int
    expanded: int
    out_channels: int
    hardswish: bool
    stride: int
    context: int

    @classmethod
    def scaled(cls, setting: tuple[int, int, int, int, bool, int], width: float) -> BlockConfig:
        in_c, kernel, expanded, out_c, hardswish, stride = setting
        expanded = md(expanded * width)
        # Context size H: a quarter of the expanded channels, clipped to [md(32w), md(128w)].
        context = min(max(md(expanded // 4), md(32 * width)), md(128 * width))
        return cls(md(in_c * width), kernel, expanded, md(out_c * width), hardswish, stride, context)


class DynamicConv(nn.Module):
    """Convolution whose kernel is a per-sample softmax mix of 4 kernels (spec 2.3), no bias.

    `weight` keeps the checkpoint layout `[1, 1, 4, O * I/groups * k * k]`; `residuals.0` maps the
    context vector to the 4 mixing logits (temperature 1, as the AudioSet checkpoints are used).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        context: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = (kernel_size - 1) // 2
        self.groups = groups
        self.residuals = nn.Sequential(nn.Linear(context, NUM_KERNELS))
        fan_out = out_channels * kernel_size * kernel_size // groups
        weight = torch.randn(1, 1, NUM_KERNELS, out_channels * (in_channels // groups) * kernel_size**2)
        self.weight = nn.Parameter(weight * (2.0 / fan_out) ** 0.5)

    def attention(self, h: Tensor) -> Tensor:
        """Per-sample mixing weights `[B, 4]` from the context vector `h` `[B, H]`."""
        return torch.softmax(self.residuals(h), dim=-1)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        b, _, f, t = x.shape
        kernels = self.weight.view(NUM_KERNELS, -1)
        mixed = (self.attention(h) @ kernels).view(
            b * self.out_channels, self.in_channels // self.groups, self.kernel_size, self.kernel_size
        )
        # One kernel per sample: fold the batch into the channel axis and the groups.
        out = F.conv2d(
            x.reshape(1, -1, f, t), mixed, stride=self.stride, padding=self.padding, groups=self.groups * b
        )
        return out.view(b, self.out_channels, out.shape[-2], out.shape[-1])


class DyReLU(nn.Module):
    """Dy-ReLU type B with M = 2 (spec 2.4): per sample and channel, the max of two context-driven lines."""

    def __init__(self, channels: int, *, context: int) -> None:
        super().__init__()
        self.channels = channels
        # Buffers (not constants) because the checkpoints store them.
        self.register_buffer("lambdas", torch.tensor([1.0] * DYRELU_M + [0.5] * DYRELU_M))
        self.register_buffer("init_v", torch.tensor([1.0] + [0.0] * (2 * DYRELU_M - 1)))
        self.coef_net = nn.Sequential(nn.Linear(context, 2 * DYRELU_M * channels))

    def coefficients(self, h: Tensor) -> Tensor:
        """`[B, C, 4]`: slopes a1, a2 then offsets b1, b2 per channel."""
        theta = 2.0 * torch.sigmoid(self.coef_net(h)) - 1.0
        return theta.view(-1, self.channels, 2 * DYRELU_M) * self.lambdas + self.init_v

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        c = self.coefficients(h)[:, :, None, None, :]
        return torch.maximum(x * c[..., 0] + c[..., 2], x * c[..., 1] + c[..., 3])


class ContextGen(nn.Module):
    """Context generator (spec 2.2): context vector `h` `[B, H]` and the coordinate attention gates."""

    def __init__(self, in_channels: int, expanded: int, *, context: int, stride: int) -> None:
        super().__init__()
        self.joint_conv = nn.Conv2d(in_channels, context, 1, bias=False)
        self.joint_norm = batch_norm(context)
        self.joint_act = nn.Hardswish(inplace=True)
        self.conv_f = nn.Conv2d(context, expanded, 1)
        self.conv_t = nn.Conv2d(context, expanded, 1)
        if stride > 1:
            # Follow the depthwise conv's downsampling; zero padding counts in the average.
            self.pool_f: nn.Module = nn.AvgPool2d((3, 1), stride=(stride, 1), padding=(1, 0))
            self.pool_t: nn.Module = nn.AvgPool2d((1, 3), stride=(1, stride), padding=(0, 1))
        else:
            self.pool_f = nn.Identity()
            self.pool_t = nn.Identity()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        f = x.shape[2]
        freq = x.mean(dim=3, keepdim=True)  # [B, I, F, 1]
        time = x.mean(dim=2, keepdim=True).transpose(2, 3)  # [B, I, T, 1]
        # One shared 1x1 transform over the frequency and time sequences stacked along one axis.
        z = self.joint_act(self.joint_norm(self.joint_conv(torch.cat([freq, time], dim=2))))
        h = z.mean(dim=(2, 3))
        gate_f = self.conv_f(self.pool_f(z[:, :, :f]))  # [B, E, F', 1]
        gate_t = self.conv_t(self.pool_t(z[:, :, f:].transpose(2, 3)))  # [B, E, 1, T']
        return h, gate_f, gate_t


class DyBlock(nn.Module):
    """Dynamic inverted residual block (spec 2.1)."""

    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__()
        act = nn.Hardswish if cfg.hardswish else nn.ReLU
        e, h = cfg.expanded, cfg.context
        self.expand = e != cfg.in_channels
        self.use_residual = cfg.stride == 1 and cfg.in_channels == cfg.out_channels
        if self.expand:
            self.exp_conv = DynamicConv(cfg.in_channels, e, context=h)
            self.exp_norm = batch_norm(e)
            self.exp_act = act(inplace=True)
        self.depth_conv = DynamicConv(e, e, context=h, kernel_size=cfg.kernel, stride=cfg.stride, groups=e)
        self.depth_norm = batch_norm(e)
        self.depth_act = DyReLU(e, context=h)
        self.proj_conv = DynamicConv(e, cfg.out_channels, context=h)
        self.proj_norm = batch_norm(cfg.out_channels)
        self.context_gen = ContextGen(cfg.in_channels, e, context=h, stride=cfg.stride)

    def forward(self, x: Tensor) -> Tensor:
        h, gate_f, gate_t = self.context_gen(x)
        out = x
        if self.expand:
            out = self.exp_act(self.exp_norm(self.exp_conv(out, h)))
        out = self.depth_act(self.depth_norm(self.depth_conv(out, h)), h)
        out = out * torch.sigmoid(gate_f) * torch.sigmoid(gate_t)  # coordinate attention
        out = self.proj_norm(self.proj_conv(out, h))
        if self.use_residual:
            out = out + x
        return out


class DyMN(TaggingNet):
    """DyMN at width `width` (0.4, 1.0, 2.0 for the published dymn04, dymn10, dymn20)."""

    def __init__(self, *, width: float = 1.0, num_classes: int = 527) -> None:
        configs = [BlockConfig.scaled(s, width) for s in BLOCK_SETTINGS]
        last = configs[-1].out_channels
        super().__init__(embedding_dim=6 * last, num_classes=num_classes)
        self.width = width
        self.layers = nn.ModuleList(DyBlock(cfg) for cfg in configs)
        self.in_c = ConvNormAct(1, configs[0].in_channels, kernel_size=3, stride=2)
        self.out_c = ConvNormAct(last, 6 * last)
        self.classifier = classifier_head(6 * last, md(1280 * width), num_classes)

    def features_forward(self, x: Tensor) -> Tensor:
        x = self.in_c(x)
        for layer in self.layers:
            x = layer(x)
        return self.out_c(x)
