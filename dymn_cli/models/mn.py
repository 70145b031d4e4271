"""MobileNetV3 ("MN") of the published AudioSet checkpoints (spec `mn.md`).

Every submodule name below is a checkpoint key (`features.N.block.j...`, `conc_se_layers.0.fc1`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dymn_cli.models.common import ConvNormAct, TaggingNet, classifier_head, linear, md, sigmoid

# (in, kernel, expanded, out, squeeze-excitation, hardswish, stride) before width scaling, spec `mn.md`.
BLOCK_SETTINGS: tuple[tuple[int, int, int, int, bool, bool, int], ...] = (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
)


class SqueezeExcitation(nn.Module):
    """Channel squeeze-excitation: `x * sigmoid(fc2(relu(fc1(mean over F, T))))`."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x: Tensor) -> Tensor:
        squeezed = torch.relu(linear(x.mean(dim=(2, 3)), self.fc1.weight, self.fc1.bias))
        return x * sigmoid(linear(squeezed, self.fc2.weight, self.fc2.bias))[:, :, None, None]


class ConcurrentSE(nn.Module):
    """Holder that reproduces the checkpoint key `conc_se_layers.0`.

    The authors' block can run several squeeze-excitations (over channels, frequency, time) and merge
    them; the published checkpoints use exactly one, over channels, so the merge is the identity.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([SqueezeExcitation(channels, md(channels // 4))])

    def forward(self, x: Tensor) -> Tensor:
        return self.conc_se_layers[0](x)


class InvertedResidual(nn.Module):
    """Expand (if E != I) -> depthwise -> squeeze-excitation (optional) -> project, plus the shortcut."""

    def __init__(self, in_c: int, kernel: int, expanded: int, out_c: int, *, se: bool, hardswish: bool, stride: int) -> None:
        super().__init__()
        act = nn.Hardswish if hardswish else nn.ReLU
        self.use_residual = stride == 1 and in_c == out_c
        self.widest = max(in_c, expanded, out_c)  # channels of the largest map inside, at input resolution
        layers: list[nn.Module] = []
        if expanded != in_c:
            layers.append(ConvNormAct(in_c, expanded, activation=act))
        layers.append(ConvNormAct(expanded, expanded, kernel_size=kernel, stride=stride, groups=expanded, activation=act))
        if se:
            layers.append(ConcurrentSE(expanded))
        layers.append(ConvNormAct(expanded, out_c, activation=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out.add_(x) if self.use_residual else out


# On CPU, a layer whose feature maps for the whole batch would exceed this runs one sample at a time.
CPU_BATCH_MAP_BYTES = 32 * 2**20


class MN(TaggingNet):
    """MobileNetV3 at width `width` (0.1 ... 4.0 for the published mn01 ... mn40).

    On CPU the high-resolution layers run one sample at a time, and the batch is put together for the
    layers where its maps are small (`max_batch_map_bytes`): a batch's large maps outgrow the caches (and
    glibc hands allocations above 32 MiB out as fresh pages, zeroed and faulted in on every call), while
    the small late maps gain from batching. Same arithmetic; at batch 16, mn10 runs about 1.5x as fast
    (benchmarks/model_speed.py, "mn10 whole batch in every layer").
    """

    def __init__(self, *, width: float = 1.0, num_classes: int = 527) -> None:
        last = md(160 * width)
        super().__init__(embedding_dim=6 * last, num_classes=num_classes)
        self.width = width
        layers: list[nn.Module] = [ConvNormAct(1, md(16 * width), kernel_size=3, stride=2)]
        for in_c, kernel, expanded, out_c, se, hardswish, stride in BLOCK_SETTINGS:
            layers.append(
                InvertedResidual(
                    md(in_c * width),
                    kernel,
                    md(expanded * width),
                    md(out_c * width),
                    se=se,
                    hardswish=hardswish,
                    stride=stride,
                )
            )
        layers.append(ConvNormAct(last, 6 * last))
        self.features = nn.Sequential(*layers)
        self.classifier = classifier_head(6 * last, md(1280 * width), num_classes)
        # Largest batch feature map (bytes) that a layer takes in one go; None: CPU_BATCH_MAP_BYTES on
        # CPU, no limit elsewhere.
        self.max_batch_map_bytes: float | None = None

    def features_forward(self, x: Tensor) -> Tensor:
        limit = self.max_batch_map_bytes
        if limit is None:
            limit = CPU_BATCH_MAP_BYTES if x.device.type == "cpu" else math.inf
        # Slices (`split`), not `x[i][None]`: that view's batch stride hides the channels-last layout
        # from oneDNN, which then falls back to slow NCHW convolutions.
        chunks = [x]
        for layer in self.features:
            widest = layer.widest if isinstance(layer, InvertedResidual) else layer[0].out_channels
            batch_map_bytes = x.shape[0] * widest * chunks[0].shape[2] * chunks[0].shape[3] * x.element_size()
            if batch_map_bytes > limit and len(chunks) == 1:
                chunks = list(chunks[0].split(1))
            elif batch_map_bytes <= limit and len(chunks) > 1:
                chunks = [torch.cat(chunks)]
            chunks = [layer(chunk) for chunk in chunks]
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)
