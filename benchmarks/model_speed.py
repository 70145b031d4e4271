"""Model-only speed: milliseconds per 10 s window (input `[B, 1, 128, 1000]` float32) on CPU.

    python benchmarks/model_speed.py                       # default models and batch sizes
    python benchmarks/model_speed.py --models dymn10 --batches 1 4 8 --repeats 10

For each model and batch size: warm-up calls, then `--repeats` timed calls under `torch.inference_mode`;
the table shows the best call divided by the batch size (best-of, because on a shared machine the other
processes only ever add time). Random weights: speed does not depend on their values.

It also times, in the same run, dymn10 with the authors' formulation of the dynamic convolution (the batch
folded into convolution groups, one mixed kernel per sample, BatchNorm applied afterwards, contiguous
layout), so that the speedup of the default path is measured on the same machine under the same load,
and the default path of dymn10 with the alternatives that it was chosen over (contiguous layout instead of
channels-last, `torch.no_grad` instead of `torch.inference_mode`).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dymn_cli.models import create_model
from dymn_cli.models.dymn import NUM_KERNELS, DyBlock, DynamicConv

FAMILY_WIDTH = {
    "dymn04": ("dymn", 0.4),
    "dymn10": ("dymn", 1.0),
    "dymn20": ("dymn", 2.0),
    "mn04": ("mn", 0.4),
    "mn10": ("mn", 1.0),
    "mn40": ("mn", 4.0),
}
FRAMES = 1000  # one 10 s window at hop 320, 32 kHz


def grouped_dynamic_conv(conv: DynamicConv, x: Tensor, h: Tensor) -> Tensor:
    """The authors' dynamic convolution: the batch folded into the groups, one mixed kernel per sample."""
    b, _, f, t = x.shape
    mixed = conv.attention(h) @ conv.weight.view(NUM_KERNELS, -1)
    kernels = mixed.view(b * conv.out_channels, conv.in_channels // conv.groups, conv.kernel_size, conv.kernel_size)
    out = F.conv2d(x.reshape(1, -1, f, t), kernels, stride=conv.stride, padding=conv.padding, groups=conv.groups * b)
    return out.view(b, conv.out_channels, out.shape[-2], out.shape[-1])


def per_sample_kernel_block_forward(self: DyBlock, x: Tensor) -> Tensor:
    """`DyBlock.forward` as the authors wrote it: whole-batch steps, BatchNorm modules after the convolutions."""
    h, gate_f, gate_t = self.context_gen(x)
    out = x
    if self.expand:
        out = self.exp_act(self.exp_norm(grouped_dynamic_conv(self.exp_conv, out, h)))
    out = self.depth_act(self.depth_norm(grouped_dynamic_conv(self.depth_conv, out, h)), h)
    out = out * gate_f * gate_t
    out = self.proj_norm(grouped_dynamic_conv(self.proj_conv, out, h))
    return out + x if self.use_residual else out


@contextlib.contextmanager
def per_sample_kernels(model: nn.Module) -> Iterator[None]:
    """Run `model` (a DyMN) with the reference blocks, in the contiguous layout they were written for."""
    saved = DyBlock.forward, model.memory_format
    DyBlock.forward = per_sample_kernel_block_forward  # type: ignore[method-assign]
    model.memory_format = torch.contiguous_format
    try:
        yield
    finally:
        DyBlock.forward, model.memory_format = saved  # type: ignore[method-assign]


def ms_per_window(
    model: nn.Module,
    batch: int,
    *,
    repeats: int,
    warmup: int,
    grad_mode: Callable[[], contextlib.AbstractContextManager] = torch.inference_mode,
) -> float:
    x = torch.randn(batch, 1, 128, FRAMES)
    with grad_mode():
        for _ in range(warmup):
            model(x)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - start)
    return 1000.0 * best / batch


def row(label: str, times: dict[int, float]) -> str:
    best = min(times, key=times.__getitem__)
    cells = "".join(f"{times[b]:>9.1f}" for b in times)
    return f"{label:<34}{cells}   {times[best]:>6.1f} @ {best}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(FAMILY_WIDTH), choices=list(FAMILY_WIDTH))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8, 16, 32])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell (best is reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-reference", action="store_true", help="skip the dymn10 reference and alternatives")
    args = parser.parse_args()

    torch.manual_seed(0)
    kw = {"repeats": args.repeats, "warmup": args.warmup}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per 10 s window, best of {args.repeats}")
    print(f"{'model':<34}" + "".join(f"{'B=' + str(b):>9}" for b in args.batches) + "   best @ B")
    results: dict[str, dict[int, float]] = {}
    for name in args.models:
        family, width = FAMILY_WIDTH[name]
        model = create_model(family=family, width=width)
        results[name] = {b: ms_per_window(model, b, **kw) for b in args.batches}
        print(row(name, results[name]), flush=True)
    if args.no_reference:
        return

    model = create_model(family="dymn", width=1.0)
    default = results.get("dymn10") or {b: ms_per_window(model, b, **kw) for b in args.batches}
    with per_sample_kernels(model):
        reference = {b: ms_per_window(model, b, **kw) for b in args.batches}
    print(row("dymn10 per-sample kernels (ref.)", reference), flush=True)
    model.memory_format = torch.contiguous_format
    contiguous = {b: ms_per_window(model, b, **kw) for b in args.batches}
    model.memory_format = torch.channels_last
    print(row("dymn10 contiguous layout", contiguous), flush=True)
    no_grad = {b: ms_per_window(model, b, grad_mode=torch.no_grad, **kw) for b in args.batches}
    print(row("dymn10 torch.no_grad", no_grad), flush=True)
    ratio = min(reference.values()) / min(default.values())
    print(f"dymn10 speedup over the reference, best batch against best batch: {ratio:.2f}x")
    print("per batch: " + ", ".join(f"B={b} {reference[b] / default[b]:.2f}x" for b in args.batches))


if __name__ == "__main__":
    main()
