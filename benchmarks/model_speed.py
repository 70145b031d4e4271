"""Model-only speed: milliseconds per 10 s window (input `[B, 1, 128, 1000]` float32) on CPU.

    python benchmarks/model_speed.py                       # default models and batch sizes
    python benchmarks/model_speed.py --models dymn10 --batches 1 4 8 --rounds 10

Every cell (model, variant, batch size) is warmed up, then timed once per round, round after round, and
the table shows each cell's fastest call divided by the batch size. Interleaving the cells spreads the
load of other processes over all of them, and the fastest call is the one they disturbed least. Random
weights: speed does not depend on their values. All of torch's threads (`torch.get_num_threads()`).

Besides the default path of each model, the same rounds time the baseline and the alternatives the
defaults were chosen over, so that the ratios are measured under the same conditions (dymn10):
- "authors' code": the baseline, the network computed as the authors' code computes it
  (`benchmarks/authors_reference.py`: separate BatchNorm passes, the batch folded into conv groups with
  one mixed kernel per sample, 5-D Dy-ReLU), under `torch.no_grad` as their example runs it;
- "batch in conv groups": this project's network with the authors' batching of the dynamic
  convolutions (`DyMN.per_sample = False`) and contiguous layout; everything else as the default;
- "contiguous layout": the default per-sample path in NCHW instead of channels-last;
- "torch.no_grad": the default path under `torch.no_grad` instead of `torch.inference_mode`;
and mn10 with every layer on the whole batch (`MN.max_batch_map_bytes = inf`) instead of running the
layers with large maps one sample at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from authors_reference import AuthorsLogMel, authors_dymn_forward  # (this folder: run as a script)
from torch import Tensor, nn

from dymn_cli.models.build import create_model
from dymn_cli.models.frontend import LogMel

FAMILY_WIDTH = {
    "dymn04": ("dymn", 0.4),
    "dymn10": ("dymn", 1.0),
    "dymn20": ("dymn", 2.0),
    "mn04": ("mn", 0.4),
    "mn10": ("mn", 1.0),
    "mn40": ("mn", 4.0),
}
FRAMES = 1000  # one 10 s window at hop 320, 32 kHz
SAMPLES = 320_000  # one 10 s window at 32 kHz

BASELINE = "dymn10 authors' code (baseline)"
# Alternatives to the default paths: label -> (model, model attributes, grad mode)
ALTERNATIVES: dict[str, tuple[str, dict[str, object], Callable[[], contextlib.AbstractContextManager]]] = {
    "dymn10 batch in conv groups": (
        "dymn10",
        {"per_sample": False, "memory_format": torch.contiguous_format},
        torch.inference_mode,
    ),
    "dymn10 contiguous layout": ("dymn10", {"memory_format": torch.contiguous_format}, torch.inference_mode),
    "dymn10 torch.no_grad": ("dymn10", {}, torch.no_grad),
    "mn10 whole batch in every layer": ("mn10", {"max_batch_map_bytes": math.inf}, torch.inference_mode),
}
DEFAULTS = {"per_sample": None, "memory_format": None, "max_batch_map_bytes": None}


@dataclass
class Row:
    label: str
    model: nn.Module
    attributes: dict[str, object] = field(default_factory=dict)
    grad_mode: Callable[[], contextlib.AbstractContextManager] = torch.inference_mode
    forward: Callable[[nn.Module, Tensor], object] = nn.Module.__call__
    best: dict[int, float] = field(default_factory=dict)  # batch size -> fastest call, seconds

    def call(self, x: Tensor) -> float:
        for name, value in {**DEFAULTS, **self.attributes}.items():
            if hasattr(self.model, name):
                setattr(self.model, name, value)
        with self.grad_mode():
            start = time.perf_counter()
            self.forward(self.model, x)
            return time.perf_counter() - start

    def ms(self, batch: int) -> float:
        return 1000.0 * self.best[batch] / batch

    def line(self) -> str:
        batches = sorted(self.best)
        fastest = min(batches, key=self.ms)
        cells = "".join(f"{self.ms(b):>9.1f}" for b in batches)
        return f"{self.label:<36}{cells}   {self.ms(fastest):>6.1f} @ {fastest}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(FAMILY_WIDTH), choices=list(FAMILY_WIDTH))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 16, 32])
    parser.add_argument("--rounds", type=int, default=5, help="timed calls per cell (the fastest counts)")
    parser.add_argument("--no-alternatives", action="store_true", help="only the default path of each model")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="default: all (%(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    models: dict[str, nn.Module] = {}

    def model(name: str) -> nn.Module:
        if name not in models:
            family, width = FAMILY_WIDTH[name]
            models[name] = create_model(family=family, width=width)
        return models[name]

    rows = [Row(name, model(name)) for name in args.models]
    if not args.no_alternatives:
        rows.append(Row(BASELINE, model("dymn10"), grad_mode=torch.no_grad, forward=authors_dymn_forward))
        rows += [Row(label, model(name), attrs, mode) for label, (name, attrs, mode) in ALTERNATIVES.items()]

    inputs = {b: torch.randn(b, 1, 128, FRAMES) for b in args.batches}
    for row in rows:  # warm-up: first calls allocate and create oneDNN primitives
        for b, x in inputs.items():
            row.call(x)
            row.best[b] = float("inf")
    for _ in range(args.rounds):
        for row in rows:
            for b, x in inputs.items():
                row.best[b] = min(row.best[b], row.call(x))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per 10 s window, fastest of {args.rounds}")
    print(f"{'':<36}" + "".join(f"{'B=' + str(b):>9}" for b in args.batches) + "   best @ B")
    for row in rows:
        print(row.line())
    by_label = {row.label: row for row in rows}
    if "dymn10" in by_label and not args.no_alternatives:
        default, reference = by_label["dymn10"], by_label[BASELINE]
        best_default = min(default.ms(b) for b in args.batches)
        best_reference = min(reference.ms(b) for b in args.batches)
        print(f"dymn10 speedup over the authors' code, best batch against best batch: {best_reference / best_default:.2f}x")
        print("per batch: " + ", ".join(f"B={b} {reference.ms(b) / default.ms(b):.2f}x" for b in args.batches))
    print_front_ends(args.rounds)


def print_front_ends(rounds: int) -> None:
    """The log-mel front end, ms per 10 s window: one window per call (what the CPU engine does) against a
    batch of 16 per call, and the authors' front end (2-tap conv1d pre-emphasis, mel bank rebuilt per call)."""
    waves = torch.randn(16, SAMPLES) * 0.1
    ours, authors = LogMel(), AuthorsLogMel()
    cells = {
        "front end, 1 window per call": lambda: [ours(w) for w in waves.split(1)],
        "front end, 16 windows per call": lambda: ours(waves),
        "authors' front end, 1 window per call": lambda: [authors(w) for w in waves.split(1)],
    }
    best = dict.fromkeys(cells, float("inf"))
    with torch.inference_mode():
        for _ in range(rounds + 1):  # (the first round warms up)
            for label, fn in cells.items():
                start = time.perf_counter()
                fn()
                best[label] = min(best[label], time.perf_counter() - start)
    print("\nfront end, ms per 10 s window (16 windows, fastest of the rounds):")
    for label, seconds in best.items():
        print(f"{label:<40}{1000 * seconds / len(waves):>7.2f}")


if __name__ == "__main__":
    main()
