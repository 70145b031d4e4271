"""DyMN: MobileNetV3 with dynamic blocks (spec `dymn.md`, section 2), as in the published checkpoints.

Every submodule name below is a checkpoint key; the registration order reproduces the authors' state dict
order (the blocks come before `in_c` there, because the authors create `layers` first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dymn_cli.models.common import (
    ConvNormAct,
    TaggingNet,
    batch_norm,
    bn_scale_shift,
    classifier_head,
    conv2d,
    linear,
    md,
    rows_product,
    sigmoid,
)

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
    context vector to the 4 mixing logits (temperature 1, as the AudioSet checkpoints are used; the
    block evaluates it together with its other heads). `mixed_kernels` gives each sample's kernel,
    `conv` applies them (see `DyBlock`).
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

    def folded_bank(self, norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
        """The 4 kernels `[4, O, I/groups, k, k]` with the following BatchNorm (eval mode) folded in,
        and the bias `[O]` that it leaves.

        Mixing is linear, so scaling the bank once equals scaling every sample's mixed kernel; it costs
        nothing per call, and oneDNN adds the bias inside the convolution.
        """
        scale, shift = bn_scale_shift(norm)
        k = self.kernel_size
        bank = self.weight.view(NUM_KERNELS, self.out_channels, self.in_channels // self.groups, k, k)
        return bank * scale[:, None, None, None], shift

    @staticmethod
    def mixed_kernels(attention: Tensor, bank: Tensor) -> Tensor:
        """Each sample's kernel `[B, O, I/groups, k, k]` from its mixing weights `attention` `[B, 4]`
        (the softmax of `residuals(h)`) and a bank from `folded_bank`."""
        return rows_product(attention, bank.flatten(1)).view(-1, *bank.shape[1:])

    def conv(self, x: Tensor, kernels: Tensor, bias: Tensor) -> Tensor:
        """Convolve each sample of `x` `[n, I, F, T]` with its own kernel from `kernels` `[n, O, I/groups, k, k]`."""
        n, _, f, t = x.shape
        if n == 1:
            # Not through the reshapes below: even a no-op view of a channels-last sample gives it a batch
            # stride under which oneDNN no longer sees channels-last and falls back to slow NCHW kernels.
            return conv2d(x, kernels[0], bias, stride=self.stride, padding=self.padding, groups=self.groups)
        # Several samples: folded into the channels and the groups, as in the authors' code.
        out = conv2d(
            x.reshape(1, -1, f, t),
            kernels.reshape(-1, *kernels.shape[2:]),
            bias.repeat(n),
            stride=self.stride,
            padding=self.padding,
            groups=self.groups * n,
        )
        return out.view(n, self.out_channels, out.shape[-2], out.shape[-1])


class DyReLU(nn.Module):
    """Dy-ReLU type B with M = 2 (spec 2.4): per sample and channel, the max of two context-driven lines."""

    def __init__(self, channels: int, *, context: int) -> None:
        super().__init__()
        self.channels = channels
        # Buffers (not constants) because the checkpoints store them.
        self.register_buffer("lambdas", torch.tensor([1.0] * DYRELU_M + [0.5] * DYRELU_M))
        self.register_buffer("init_v", torch.tensor([1.0] + [0.0] * (2 * DYRELU_M - 1)))
        self.coef_net = nn.Sequential(nn.Linear(context, 2 * DYRELU_M * channels))

    def coefficients(self, theta: Tensor) -> Tensor:
        """`[4, B, C, 1, 1]`: slopes a1, a2 then offsets b1, b2 for each sample and channel, from the
        output of `coef_net` `[B, 4C]`.

        Contiguous over channels: strided operands slow the elementwise kernels down.
        """
        theta = 2.0 * sigmoid(theta) - 1.0
        coefs = theta.view(-1, self.channels, 2 * DYRELU_M) * self.lambdas + self.init_v
        return coefs.permute(2, 0, 1).contiguous()[..., None, None]

    @staticmethod
    def activate(x: Tensor, coefs: Tensor) -> Tensor:
        """`max(x * a1 + b1, x * a2 + b2)` with `coefs` `[4, B, C, 1, 1]` from `coefficients`
        (or anything that broadcasts against `x` after the first axis)."""
        a1, a2, b1, b2 = coefs
        return torch.maximum(torch.addcmul(b1, x, a1), torch.addcmul(b2, x, a2))

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return self.activate(x, self.coefficients(self.coef_net(h)))


class ContextGen(nn.Module):
    """Context generator (spec 2.2): context vector `h` `[B, H]` and the coordinate attention gates.

    It works on short sequences (F + T positions), where the cost is per call, not per element: its 1x1
    convolutions run as matrix products (`linear`) on `[B, positions, channels]` (the modules only hold
    the checkpoint's parameters), with `joint_norm` folded into `joint_conv` (`derive`).
    """

    def __init__(self, in_channels: int, expanded: int, *, context: int, stride: int) -> None:
        super().__init__()
        self.joint_conv = nn.Conv2d(in_channels, context, 1, bias=False)
        self.joint_norm = batch_norm(context)
        self.conv_f = nn.Conv2d(context, expanded, 1)
        self.conv_t = nn.Conv2d(context, expanded, 1)
        # Follow the depthwise conv's downsampling; zero padding counts in the average.
        self.pool: nn.Module = nn.AvgPool1d(3, stride=stride, padding=1) if stride > 1 else nn.Identity()

    def derive(self) -> None:
        scale, shift = bn_scale_shift(self.joint_norm)
        self.joint = (self.joint_conv.weight.flatten(1) * scale[:, None], shift)
        self.to_f = (self.conv_f.weight.flatten(1), self.conv_f.bias)
        self.to_t = (self.conv_t.weight.flatten(1), self.conv_t.bias)

    def forward(self, chunks: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """`h` `[B, H]`, and the sigmoid gates over frequency `[B, E, F', 1]` and over time `[B, E, 1, T']`,
        for the batch that `chunks` (consecutive groups of samples) make up."""
        f = chunks[0].shape[2]
        seq = torch.cat([_profiles(x) for x in chunks])
        z = F.hardswish(linear(seq, *self.joint))
        h = z.mean(dim=1)
        freq = self.pool(z[:, :f].transpose(1, 2)).transpose(1, 2)  # [B, F', H]
        time = self.pool(z[:, f:].transpose(1, 2)).transpose(1, 2)  # [B, T', H]
        gate_f = sigmoid(linear(freq, *self.to_f))
        gate_t = sigmoid(linear(time, *self.to_t))
        return h, gate_f.transpose(1, 2)[:, :, :, None], gate_t.transpose(1, 2)[:, :, None, :]


def _profiles(x: Tensor) -> Tensor:
    """`[n, F + T, C]` for `x` `[n, C, F, T]`: the frequency profile (mean over T at each F), then the
    time profile (mean over F at each T)."""
    if x.is_contiguous(memory_format=torch.channels_last):
        # Reduce the [n, F, T, C] view, channels innermost: torch's mean over a channels-last
        # tensor's F or T axis is ~7x slower than this (benchmarks/cpu_paths.py, one thread).
        v = x.permute(0, 2, 3, 1)
        return torch.cat([v.mean(dim=2), v.mean(dim=1)], dim=1)
    return torch.cat([x.mean(dim=3), x.mean(dim=2)], dim=2).transpose(1, 2)


@dataclass(frozen=True)
class BlockDynamics:
    """What the context decides in a block, for a batch: the BatchNorm-folded kernels of the three
    dynamic convolutions `[B, O, I/groups, k, k]` (`None` when the block does not expand) with their biases
    (the same for every sample), the Dy-ReLU coefficients with the frequency gate folded in
    `[4, B, E, F', 1]`, and the time gate `[B, E, 1, T']`."""

    exp_kernels: Tensor | None
    exp_bias: Tensor | None
    depth_kernels: Tensor
    depth_bias: Tensor
    proj_kernels: Tensor
    proj_bias: Tensor
    relu_coefs: Tensor
    gate_t: Tensor

    def select(self, start: int, stop: int) -> BlockDynamics:
        """The same for samples `start` to `stop` - 1."""
        part = slice(start, stop)
        return BlockDynamics(
            None if self.exp_kernels is None else self.exp_kernels[part],
            self.exp_bias,
            self.depth_kernels[part],
            self.depth_bias,
            self.proj_kernels[part],
            self.proj_bias,
            self.relu_coefs[:, part],
            self.gate_t[part],
        )


class DyBlock(nn.Module):
    """Dynamic inverted residual block (spec 2.1), on a batch given as a list of chunks of samples.

    Everything that depends on the context (`BlockDynamics`) is computed for the whole batch at once; the
    feature maps then go through expansion, depthwise conv, Dy-ReLU, coordinate attention and projection
    chunk by chunk, the samples of a chunk folded into convolution groups as in the authors' code. The
    network chooses the chunks (`DyMN.per_sample`): one chunk of the whole batch, or one chunk per sample.

    On CPU one sample at a time is much faster, and does not slow down per sample as the batch grows:
    grouped convolutions are slow there, and a batch's expanded maps outgrow the caches, so that every
    elementwise step goes to memory, whereas one sample's maps stay in cache from step to step and each
    convolution is an ordinary oneDNN one. Keeping the samples apart from block to block also saves
    gathering them into one tensor after every block. The arithmetic is the same, up to rounding.
    """

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

    def derive(self) -> None:
        convs = [(self.exp_conv, self.exp_norm)] if self.expand else []
        convs += [(self.depth_conv, self.depth_norm), (self.proj_conv, self.proj_norm)]
        # Every linear map of the context vector h in one: the mixing logits of each dynamic
        # convolution, then the Dy-ReLU coefficients. One call instead of four.
        heads = [conv.residuals[0] for conv, _ in convs] + [self.depth_act.coef_net[0]]
        self.heads = (torch.cat([head.weight for head in heads]), torch.cat([head.bias for head in heads]))
        self.banks = [conv.folded_bank(norm) for conv, norm in convs]

    def dynamics(self, chunks: list[Tensor]) -> BlockDynamics:
        h, gate_f, gate_t = self.context_gen(chunks)
        heads = linear(h, *self.heads)
        n = len(self.banks)
        attention = torch.softmax(heads[:, : n * NUM_KERNELS].view(-1, n, NUM_KERNELS), dim=-1)
        kernels = [DynamicConv.mixed_kernels(attention[:, i], bank) for i, (bank, _) in enumerate(self.banks)]
        biases = [bias for _, bias in self.banks]
        expansion = (kernels[0], biases[0]) if self.expand else (None, None)
        return BlockDynamics(
            *expansion,
            kernels[-2],
            biases[-2],
            kernels[-1],
            biases[-1],
            # Coordinate attention multiplies the Dy-ReLU output by gate_f * gate_t > 0; gate_f (small:
            # [B, E, F', 1]) goes into the coefficients, which saves a pass over the feature map.
            self.depth_act.coefficients(heads[:, n * NUM_KERNELS :]) * gate_f,
            gate_t,
        )

    def forward(self, chunks: list[Tensor]) -> list[Tensor]:
        dyn = self.dynamics(chunks)
        outs, start = [], 0
        for x in chunks:
            outs.append(self.transform(x, dyn.select(start, start + x.shape[0])))
            start += x.shape[0]
        return outs

    def transform(self, x: Tensor, dyn: BlockDynamics) -> Tensor:
        """The block's feature-map path for the samples of `x`, given what their context decided."""
        out = x
        if dyn.exp_kernels is not None and dyn.exp_bias is not None:
            out = self.exp_act(self.exp_conv.conv(out, dyn.exp_kernels, dyn.exp_bias))
        out = self.depth_conv.conv(out, dyn.depth_kernels, dyn.depth_bias)
        out = self.depth_act.activate(out, dyn.relu_coefs).mul_(dyn.gate_t)  # Dy-ReLU, coordinate attention
        out = self.proj_conv.conv(out, dyn.proj_kernels, dyn.proj_bias)
        return out.add_(x) if self.use_residual else out


class DyMN(TaggingNet):
    """DyMN at width `width` (0.4, 1.0, 2.0 for the published dymn04, dymn10, dymn20)."""

    def __init__(self, *, width: float = 1.0, num_classes: int = 527) -> None:
        configs = [BlockConfig.scaled(s, width) for s in BLOCK_SETTINGS]
        last = configs[-1].out_channels
        super().__init__(embedding_dim=6 * last, num_classes=num_classes)
        self.width = width
        # How the blocks batch their feature maps (see `DyBlock`); None: one sample at a time on CPU,
        # the whole batch folded into convolution groups elsewhere (on GPUs that avoids many small
        # kernel launches; not measured).
        self.per_sample: bool | None = None
        self.layers = nn.ModuleList(DyBlock(cfg) for cfg in configs)
        self.in_c = ConvNormAct(1, configs[0].in_channels, kernel_size=3, stride=2)
        self.out_c = ConvNormAct(last, 6 * last)
        self.classifier = classifier_head(6 * last, md(1280 * width), num_classes)

    def features_forward(self, x: Tensor) -> Tensor:
        per_sample = x.device.type == "cpu" if self.per_sample is None else self.per_sample
        x = self.in_c(x)
        # Slices (`split`), not `x[i][None]`: that view's batch stride hides the channels-last layout
        # from oneDNN, which then falls back to slow NCHW convolutions.
        chunks = list(x.split(1)) if per_sample else [x]
        for layer in self.layers:
            chunks = layer(chunks)
        return self.out_c(torch.cat(chunks))
