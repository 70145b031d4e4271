"""Export forms of the networks: the same arithmetic as `dymn_cli.models` (BatchNorms folded, the same
weights), in plain torch operations that the TorchScript exporter writes as ONNX for any batch and any
length. They are built from a loaded network (`export_network`) and hold copies of its folded weights.

The torch networks take CPU-specific paths (oneDNN convolutions, batch-invariant matrix products,
per-sample lanes, batch folded into convolution groups) that either do not export or fix the batch.
Here:

- DyMN's 1x1 dynamic convolutions are batched matrix products: each sample's kernel is its attention
  times the kernel bank (`[B, 4] @ [4, O * I]`, a MatMul whose weight is the bank), applied with
  `[B, O, I] @ [B, I, F * T]`.
- DyMN's depthwise dynamic convolutions run the 4 kernels of the bank as one static depthwise
  convolution with 4 outputs per channel and mix their outputs with each sample's attention: mixing is
  linear, so this is exact, and it stays an ordinary Conv (per-channel int8 weights). Measured against
  shifting and adding the k x k taps with per-sample weights, see `DEPTHWISE_FORMS`.
- The context generator averages over frequency and over time (ReduceMean), and pools the profiles
  with a fixed 3-tap average: nothing depends on a size computed from the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dymn_cli.models.common import ConvNormAct, TaggingNet
from dymn_cli.models.dymn import NUM_KERNELS, DyBlock, DyMN
from dymn_cli.models.ensemble import Ensemble
from dymn_cli.models.mn import MN, InvertedResidual, SqueezeExcitation

DEPTHWISE_FORMS = ("mix_outputs", "shift_add")


def _frozen(tensor: Tensor) -> Tensor:
    return tensor.detach().clone().float().contiguous()


class FoldedConv(nn.Module):
    """A `ConvNormAct` with its BatchNorm folded in: conv2d + bias, then its activation (if any)."""

    def __init__(self, source: ConvNormAct) -> None:
        super().__init__()
        conv = source[0]
        weight, bias = source.folded
        self.register_buffer("weight", _frozen(weight))
        self.register_buffer("bias", _frozen(bias))
        self.stride, self.padding, self.groups = conv.stride[0], conv.padding[0], conv.groups
        self.activation = type(source[2])() if len(source) > 2 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding, groups=self.groups)
        return self.activation(out)


class ExportHead(nn.Module):
    """The MLP head: embedding = mean over frequency and time, then Linear, hardswish, Linear."""

    def __init__(self, classifier: nn.Sequential) -> None:
        super().__init__()
        self.hidden = nn.Linear(classifier[2].in_features, classifier[2].out_features)
        self.output = nn.Linear(classifier[5].in_features, classifier[5].out_features)
        self.hidden.load_state_dict(classifier[2].state_dict())
        self.output.load_state_dict(classifier[5].state_dict())

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        embedding = features.mean(dim=(2, 3))
        return self.output(F.hardswish(self.hidden(embedding))), embedding


class ExportSE(nn.Module):
    def __init__(self, source: SqueezeExcitation) -> None:
        super().__init__()
        self.fc1 = _copy_linear(source.fc1)
        self.fc2 = _copy_linear(source.fc2)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))[:, :, None, None]


def _copy_linear(source: nn.Linear) -> nn.Linear:
    copy = nn.Linear(source.in_features, source.out_features)
    copy.load_state_dict(source.state_dict())
    return copy


class ExportMNBlock(nn.Module):
    def __init__(self, source: InvertedResidual) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for layer in source.block:
            layers.append(FoldedConv(layer) if isinstance(layer, ConvNormAct) else ExportSE(layer.conc_se_layers[0]))
        self.block = nn.Sequential(*layers)
        self.use_residual = source.use_residual

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out


class ExportMN(nn.Module):
    def __init__(self, source: MN) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *(ExportMNBlock(layer) if isinstance(layer, InvertedResidual) else FoldedConv(layer) for layer in source.features)
        )
        self.head = ExportHead(source.classifier)

    def forward(self, mels: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.features(mels))


class ExportContext(nn.Module):
    """DyMN's context generator: the context vector `h` `[B, H]` and the gates over frequency
    `[B, E, F', 1]` and time `[B, E, 1, T']`."""

    def __init__(self, source: DyBlock) -> None:
        super().__init__()
        context = source.context_gen
        joint_weight, joint_bias = context.joint
        self.joint = _linear_of(joint_weight, joint_bias)
        self.to_f = _linear_of(*context.to_f)
        self.to_t = _linear_of(*context.to_t)
        self.stride = source.depth_conv.stride

    def pool(self, profile: Tensor) -> Tensor:
        """`[B, L, H]` -> `[B, L', H]`: the 3-tap average (zeros counted) that follows the depthwise stride."""
        if self.stride == 1:
            return profile
        return F.avg_pool1d(profile.transpose(1, 2), 3, stride=self.stride, padding=1).transpose(1, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        freq = F.hardswish(self.joint(x.mean(dim=3).transpose(1, 2)))  # [B, F, H]
        time = F.hardswish(self.joint(x.mean(dim=2).transpose(1, 2)))  # [B, T, H]
        h = torch.cat([freq, time], dim=1).mean(dim=1)
        gate_f = torch.sigmoid(self.to_f(self.pool(freq)))  # [B, F', E]
        gate_t = torch.sigmoid(self.to_t(self.pool(time)))  # [B, T', E]
        return h, gate_f.transpose(1, 2)[:, :, :, None], gate_t.transpose(1, 2)[:, :, None, :]


def _linear_of(weight: Tensor, bias: Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight.reshape(weight.shape[0], -1))
        layer.bias.copy_(bias)
    return layer


class PointwiseDynamicConv(nn.Module):
    """A 1x1 dynamic convolution: each sample's kernel mixed from the bank, applied as a batched MatMul."""

    def __init__(self, bank: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.out_channels, self.in_channels = bank.shape[1], bank.shape[2]
        self.register_buffer("bank", _frozen(bank.reshape(NUM_KERNELS, -1)))  # [4, O * I]
        self.register_buffer("bias", _frozen(bias)[:, None])

    def forward(self, x: Tensor, attention: Tensor) -> Tensor:
        kernels = torch.matmul(attention, self.bank).reshape(-1, self.out_channels, self.in_channels)
        out = torch.matmul(kernels, x.flatten(2)) + self.bias
        return out.reshape(x.shape[0], self.out_channels, x.shape[2], x.shape[3])


class DepthwiseDynamicConv(nn.Module):
    """A depthwise dynamic convolution, in one of `DEPTHWISE_FORMS`:

    - `mix_outputs`: the bank's 4 kernels as one static depthwise convolution (4 outputs per channel),
      whose outputs each sample's attention mixes;
    - `shift_add`: each sample's mixed kernel applied tap by tap, a strided slice of the padded map
      times that tap's per-sample, per-channel weight.
    """

    def __init__(self, bank: Tensor, bias: Tensor, *, stride: int, form: str = "mix_outputs") -> None:
        super().__init__()
        if form not in DEPTHWISE_FORMS:
            raise ValueError(f"unknown depthwise form {form!r}")
        self.form = form
        self.channels, self.kernel = bank.shape[1], bank.shape[-1]
        self.stride, self.padding = stride, (self.kernel - 1) // 2
        if form == "mix_outputs":  # output channel e * 4 + j is kernel j of channel e
            self.register_buffer("weight", _frozen(bank.transpose(0, 1).reshape(-1, 1, self.kernel, self.kernel)))
        else:
            self.register_buffer("weight", _frozen(bank.reshape(NUM_KERNELS, -1)))  # [4, E * k * k]
        self.register_buffer("bias", _frozen(bias)[None, :, None, None])

    def forward(self, x: Tensor, attention: Tensor) -> Tensor:
        if self.form == "mix_outputs":
            out = F.conv2d(x, self.weight, stride=self.stride, padding=self.padding, groups=self.channels)
            out = out.reshape(x.shape[0], self.channels, NUM_KERNELS, out.shape[2], out.shape[3])
            return (out * attention[:, None, :, None, None]).sum(dim=2) + self.bias
        return self._shift_add(x, attention) + self.bias

    def _shift_add(self, x: Tensor, attention: Tensor) -> Tensor:
        k, s, p = self.kernel, self.stride, self.padding
        taps = torch.matmul(attention, self.weight).reshape(-1, self.channels, k * k, 1, 1)
        padded = F.pad(x, (p, p, p, p))
        rows = (x.shape[2] + 2 * p - k) // s + 1
        cols = (x.shape[3] + 2 * p - k) // s + 1
        out = None
        for i in range(k):
            for j in range(k):
                part = padded[:, :, i : i + s * (rows - 1) + 1 : s, j : j + s * (cols - 1) + 1 : s] * taps[:, :, i * k + j]
                out = part if out is None else out + part
        assert out is not None
        return out


class ExportDyBlock(nn.Module):
    def __init__(self, source: DyBlock, depthwise_form: str) -> None:
        super().__init__()
        self.expand, self.use_residual = source.expand, source.use_residual
        self.context = ExportContext(source)
        self.heads = _linear_of(*source.heads)
        banks = list(source.banks)
        self.exp_conv = PointwiseDynamicConv(*banks.pop(0)) if source.expand else None
        self.depth_conv = DepthwiseDynamicConv(*banks[0], stride=source.depth_conv.stride, form=depthwise_form)
        self.proj_conv = PointwiseDynamicConv(*banks[1])
        self.convs = 3 if source.expand else 2
        act = source.depth_act
        self.channels = act.channels
        self.register_buffer("lambdas", _frozen(act.lambdas))
        self.register_buffer("init_v", _frozen(act.init_v))
        self.exp_act: nn.Module = type(source.exp_act)() if source.expand else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h, gate_f, gate_t = self.context(x)
        heads = self.heads(h)
        n = self.convs * NUM_KERNELS
        attention = torch.softmax(heads[:, :n].reshape(-1, self.convs, NUM_KERNELS), dim=-1)
        theta = 2.0 * torch.sigmoid(heads[:, n:]) - 1.0
        coefs = theta.reshape(-1, self.channels, 4) * self.lambdas + self.init_v  # [B, E, (a1, a2, b1, b2)]
        coefs = coefs[:, :, :, None, None] * gate_f[:, :, None]  # gate_f > 0 folds into the coefficients
        out = x
        if self.exp_conv is not None:
            out = self.exp_act(self.exp_conv(out, attention[:, 0]))
        out = self.depth_conv(out, attention[:, -2])
        out = torch.maximum(out * coefs[:, :, 0] + coefs[:, :, 2], out * coefs[:, :, 1] + coefs[:, :, 3]) * gate_t
        out = self.proj_conv(out, attention[:, -1])
        return out + x if self.use_residual else out


class ExportDyMN(nn.Module):
    def __init__(self, source: DyMN, depthwise_form: str = "mix_outputs") -> None:
        super().__init__()
        self.in_c = FoldedConv(source.in_c)
        self.layers = nn.Sequential(*(ExportDyBlock(layer, depthwise_form) for layer in source.layers))
        self.out_c = FoldedConv(source.out_c)
        self.head = ExportHead(source.classifier)

    def forward(self, mels: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.out_c(self.layers(self.in_c(mels))))


class ExportEnsemble(nn.Module):
    """As `Ensemble`: the mean of the members' logits, their embeddings side by side."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, mels: Tensor) -> tuple[Tensor, Tensor]:
        outputs = [member(mels) for member in self.members]
        logits = torch.stack([logit for logit, _ in outputs]).mean(dim=0)
        return logits, torch.cat([embedding for _, embedding in outputs], dim=1)


def export_network(network: nn.Module, *, depthwise_form: str = "mix_outputs") -> nn.Module:
    """The export form of a loaded network (DyMN, MN or an `Ensemble` of them), in eval mode."""
    if isinstance(network, Ensemble):
        return ExportEnsemble([export_network(m, depthwise_form=depthwise_form) for m in network.members]).eval()
    if not isinstance(network, TaggingNet):
        raise TypeError(f"cannot export a {type(network).__name__}")
    network.refresh()
    if isinstance(network, DyMN):
        return ExportDyMN(network, depthwise_form).eval()
    if isinstance(network, MN):
        return ExportMN(network).eval()
    raise TypeError(f"cannot export a {type(network).__name__}")


def kernel_rows(module: nn.Module) -> dict[str, int]:
    """The length of one kernel row (the input channels) of each 1x1 kernel bank in `module`, by the
    name its bank has in the exported graph (the state dict key)."""
    return {f"{name}.bank": conv.in_channels for name, conv in module.named_modules() if isinstance(conv, PointwiseDynamicConv)}
