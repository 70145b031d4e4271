"""Pieces shared by the DyMN and MobileNetV3 networks: channel rounding, conv+BN+activation, the MLP head.

Module names and their order are those of the authors' code, because they are the checkpoint keys
(`in_c.0`, `features.16.1`, `classifier.5` ...).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Every BatchNorm2d of the published checkpoints was trained with this eps.
BN_EPS = 1e-3

# torch.compiler.is_compiling is torch >= 2.3; torch._dynamo's own is the same question before that.
_is_compiling: Callable[[], bool] = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never below `divisor` nor more than 10 % down.

    The MobileNet rule (TensorFlow slim): the widths of both families are `make_divisible(c * width)`.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def md(value: float) -> int:
    """`make_divisible(value, 8)`, the short name the specs use."""
    return make_divisible(value, 8)


_ONEDNN = torch.backends.mkldnn.is_available()


def _autocast_on_cpu() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, *, stride: int = 1, padding: int = 0, groups: int = 1) -> Tensor:
    """`F.conv2d`, but float32 on the CPU always through oneDNN where torch has it.

    torch's own choice sends a 1x1 convolution of a batch under 16 on one thread to its im2col + GEMM
    path, which is about 1.7x slower than oneDNN on this project's CPU (AVX-512; benchmarks/cpu_paths.py)
    and adds the bias in a pass of its own: exactly the case of each sample's convolutions in a lane.
    """
    # (Not while torch.compile traces: the oneDNN op has no fake-tensor kernel, and the compiler
    # chooses its own convolutions anyway.)
    if _ONEDNN and x.dtype == torch.float32 and x.device.type == "cpu" and not _autocast_on_cpu() and not _is_compiling():
        return torch.ops.aten.mkldnn_convolution(x, weight, bias, [padding] * 2, [stride] * 2, [1, 1], groups)
    return F.conv2d(x, weight, bias, stride=stride, padding=padding, groups=groups)


# Matrix products on the CPU are taken over at least this many rows (see `rows_product`).
MIN_PRODUCT_ROWS = 8


def rows_product(x: Tensor, matrix: Tensor, bias: Tensor | None = None) -> Tensor:
    """`x @ matrix (+ bias)` for `x` `[..., K]`, where each row's result is the same bytes however many
    rows `x` has (on the CPU, float32).

    A window's rows share the product with the other windows of its batch. MKL computes a product of
    fewer than 4 rows with other kernels than a larger one (a matrix-vector product for one row), and
    their sums run in another order; from 4 rows on, every row goes through the same kernel, whatever
    the row count and the row's place. So fewer rows are padded with zero rows up to
    `MIN_PRODUCT_ROWS` (with a margin: that threshold is MKL's on this project's CPU), which costs
    nothing measurable: a call with so few rows is a single window's. Checked row by row, bit for bit,
    by tests/inference/test_batch_invariance.py.
    """
    rows = x.reshape(-1, x.shape[-1])
    n = rows.shape[0]
    if n < MIN_PRODUCT_ROWS and x.device.type == "cpu":
        rows = torch.cat([rows, rows.new_zeros(MIN_PRODUCT_ROWS - n, rows.shape[1])])
    out = rows @ matrix if bias is None else torch.addmm(bias, rows, matrix)
    return out[:n].reshape(*x.shape[:-1], matrix.shape[-1])


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """`F.linear`, each row's result independent of the row count (`rows_product`)."""
    return rows_product(x, weight.t(), bias)


def sigmoid(x: Tensor) -> Tensor:
    """`torch.sigmoid` of `x` `[B, ...]`, computed for each of the B windows as if it were alone (CPU).

    torch's CPU kernel runs over a tensor in whole vectors with a vectorised exp and finishes the few
    elements left at its end with the C library's exp, which rounds differently: over a batch, where
    a window's elements fall would depend on the windows before it. Written into rows kept one
    element apart, the batch cannot be taken as one run of memory: the kernel goes over each window's
    elements on their own, exactly as over that window alone.
    """
    if x.device.type != "cpu" or x.shape[0] < 2:
        return torch.sigmoid(x)
    rows = x.reshape(x.shape[0], -1)
    out = torch.empty(rows.shape[0], rows.shape[1] + 1, dtype=x.dtype)[:, :-1]
    return torch.sigmoid(rows, out=out).unflatten(1, x.shape[1:])


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def bn_scale_shift(norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as a per-channel affine map `x * scale + shift`, to fold into the layer before it."""
    assert norm.running_mean is not None and norm.running_var is not None
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias, 'same' padding) -> BatchNorm2d -> optional activation, keys `.0` conv and `.1` norm.

    The same layout as torchvision's `Conv2dNormActivation`, which the authors use; without an activation
    the Sequential simply has two entries (the activation has no parameters, so keys do not change).
    Inference only: the BatchNorm (running statistics) is folded into the convolution's weight and bias
    (`derive`, see `TaggingNet.refresh`), which saves a pass over the feature map.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        activation: Callable[..., nn.Module] | None = nn.Hardswish,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=(kernel_size - 1) // 2,
                groups=groups,
                bias=False,
            ),
            batch_norm(out_channels),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)

    def derive(self) -> None:
        scale, shift = bn_scale_shift(self[1])
        self.folded = (self[0].weight * scale[:, None, None, None], shift)

    def forward(self, x: Tensor) -> Tensor:
        conv = self[0]
        x = conv2d(x, *self.folded, stride=conv.stride[0], padding=conv.padding[0], groups=conv.groups)
        return self[2](x) if len(self) > 2 else x


def _forget_sources(module: TaggingNet, _: object) -> None:
    """After a load (with assign=True the parameter objects are new ones), collect the tensors again."""
    module._sources = None


def refresh_all(model: nn.Module) -> None:
    """`refresh` every network in `model` (one network, or an ensemble of them)."""
    for module in model.modules():
        if isinstance(module, TaggingNet):
            module.refresh()


def classifier_head(in_features: int, hidden: int, num_classes: int, *, dropout: float = 0.2) -> nn.Sequential:
    """The MLP head of both families: pool, flatten, Linear, hardswish, dropout, Linear (`classifier.2`/`.5`)."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(start_dim=1),
        nn.Linear(in_features, hidden),
        nn.Hardswish(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(hidden, num_classes),
    )


class TaggingNet(nn.Module):
    """Base of both networks: a feature extractor to a `[B, C, F', T']` map, then the MLP head.

    `forward(x)` takes log-mels `[B, 1, 128, T]` and returns `(logits [B, num_classes], embedding [B, C])`,
    the embedding being the mean of the last feature map over frequency and time.

    Inference only: every BatchNorm is folded into the convolution before it, with its running statistics,
    whether or not the module is in training mode (only the head's dropout follows `train()`).

    Such inference constants (folded kernels, concatenated heads) are computed from the parameters by
    the `derive()` method of the submodules that have one: on the first forward, and again whenever a
    parameter or buffer has changed since (`refresh`). They are computed without autograd: these
    networks are for inference, and no gradient reaches the parameters through them.
    """

    classifier: nn.Sequential

    def __init__(self, *, embedding_dim: int, num_classes: int) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes
        # Layout of the feature maps; None: channels-last on CPU, where it lets oneDNN run the depthwise
        # and 1x1 convolutions without reordering (fastest for both families, benchmarks/model_speed.py),
        # and contiguous elsewhere. Outputs are the same either way.
        self.memory_format: torch.memory_format | None = None
        self._sources: list[Tensor] | None = None  # the parameters and buffers, in order
        self._derived_key: list[tuple[int, int]] = []
        self._derived_from: list[Tensor] = []
        self._derive_lock = threading.Lock()
        self.register_load_state_dict_post_hook(_forget_sources)

    def refresh(self) -> None:
        """Recompute the inference constants if a parameter or buffer changed since they were derived.

        A change is new storage (`.to()`, `.double()`) or a new version (an in-place write such as
        `load_state_dict`'s); loading into this network with `assign=True` is seen too. Not seen: a
        parameter or buffer object replaced by hand, and in-place writes through `.data` (which has a
        version counter of its own): call `invalidate()` after those. The constants keep the storages
        they came from alive, so that no new tensor can take over one of their addresses.
        """
        if self._sources is None:
            self._sources = [*self.parameters(), *self.buffers()]
        tensors = self._sources
        if self._key(tensors) == self._derived_key:
            return
        with self._derive_lock, torch.no_grad():
            key = self._key(tensors)
            if key == self._derived_key:  # another thread derived them meanwhile
                return
            for module in self.modules():
                if hasattr(module, "derive"):
                    module.derive()
            self._derived_key, self._derived_from = key, [t.detach() for t in tensors]

    def invalidate(self) -> None:
        """Derive the inference constants again on the next forward."""
        self._sources, self._derived_key, self._derived_from = None, [], []

    @staticmethod
    def _key(tensors: list[Tensor]) -> list[tuple[int, int]]:
        # (Tensors made under inference_mode have no version counter: only a new storage shows there.)
        return [(t.data_ptr(), -1 if t.is_inference() else t._version) for t in tensors]

    def _apply(self, fn: Callable, recurse: bool = True) -> TaggingNet:
        # .to(), .double(), .cuda() may put new buffer (and parameter) objects in place: collect them again.
        self._sources = None
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        # A lock neither pickles nor deep-copies; the copy derives its own constants on first use.
        state.update(_derive_lock=None, _sources=None, _derived_key=[], _derived_from=[])
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._derive_lock = threading.Lock()

    def layout_for(self, x: Tensor) -> torch.memory_format:
        if self.memory_format is not None:
            return self.memory_format
        return torch.channels_last if x.device.type == "cpu" else torch.contiguous_format

    def features_forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not _is_compiling():  # (InferenceEngine refreshes a compiled model before each call)
            self.refresh()
        layout = self.layout_for(x)
        x = x.contiguous(memory_format=layout)
        if layout == torch.channels_last and x.shape[1] == 1:
            # With one channel NCHW and NHWC are the same bytes, and torch keeps the NCHW strides, so the
            # first convolution (and every layer after it) would stay NCHW. Spell out the NHWC strides.
            b, _, f, t = x.shape
            x = x.as_strided((b, 1, f, t), (f * t, 1, t, 1))
        features = self.features_forward(x)
        head = self.classifier
        # Pool once: the head's own pooling and flattening (entries 0 and 1) would recompute `embedding`.
        embedding = torch.flatten(head[0](features), 1)
        hidden = head[4](head[3](linear(embedding, head[2].weight, head[2].bias)))
        logits = linear(hidden, head[5].weight, head[5].bias)
        return logits, embedding
