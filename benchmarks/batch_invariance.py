"""Exhaustive check that a window's outputs on the CPU do not depend on what it is batched with.

    python benchmarks/batch_invariance.py                  # dymn04, dymn10, mn04; 8 windows; 10 s and 2.5 s
    python benchmarks/batch_invariance.py --models mn04 --windows 12 --lengths 10

For each model (the random-weight golden checkpoints of tests/golden, whose logits reach 1e11: any
float32 difference shows there), each window length and each engine (1 lane on 1 torch thread, and 2
lanes on 2 threads), every run of consecutive windows `windows[s : s + b]` for every batch size b
from 1 to N and every start s goes through the engine, and so do a few shuffled batches; every window's
logits and embedding must be bitwise equal (`torch.equal`) to that window computed alone on one
thread. That covers batch sizes, positions in a batch, how a batch is shared out between lanes (the
shares follow from b and the lane count) and the lane count itself. The windows: the golden
recordings, tones, noise, silence, a clipped one and a zero-padded last window.

Prints the mismatches (at most a few per case) and one line per case; exits 1 if any window differs.
The same check, smaller, is tests/inference/test_batch_invariance.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dymn_cli.inference.engine import InferenceEngine
from dymn_cli.models.build import build_model

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"


def test_windows(n: int, samples: int, seed: int = 0) -> np.ndarray:
    """`n` windows of `samples` at 32 kHz, as varied as tagging meets them."""
    rng = np.random.default_rng(seed)
    golden = torch.load(GOLDEN / "frontend.pt")
    recorded = np.concatenate([golden["waves"][k].numpy() for k in sorted(golden["waves"])] + [golden["long_23.7s"].numpy()])
    t = np.arange(samples) / 32_000
    padded = np.zeros(samples, dtype=np.float32)
    padded[: samples // 3] = recorded[: samples // 3]
    kinds = [
        lambda: recorded[(start := rng.integers(0, len(recorded) - samples)) : start + samples],
        lambda: sum(0.2 * np.sin(2 * np.pi * f * t) for f in rng.uniform(50, 8000, 3)),
        lambda: 0.1 * rng.standard_normal(samples),
        lambda: np.zeros(samples),
        lambda: np.clip(3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t), -1, 1),
        lambda: padded,
    ]
    return np.stack([kinds[i % len(kinds)]() for i in range(n)]).astype(np.float32)


def one_thread(fn):
    """Call `fn` with torch on one thread, the caller's count put back after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def check(
    model: torch.nn.Module,
    windows: np.ndarray,
    engine: InferenceEngine,
    threads: int,
    rng: np.random.Generator,
    shuffles: int,
    report: int = 3,
) -> tuple[int, int]:
    """(windows compared, windows that differ) for every run of consecutive windows and a few shuffles."""
    alone_engine = InferenceEngine(model, device="cpu", lanes=1)
    alone = [one_thread(lambda w=w: alone_engine(w[None])) for w in windows]
    n = len(windows)
    batches = [np.arange(s, s + b) for b in range(1, n + 1) for s in range(n - b + 1)]
    batches += [rng.permutation(n)[: rng.integers(1, n + 1)] for _ in range(shuffles)]
    compared = differ = 0
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for rows in batches:
            logits, embeddings = engine(windows[rows])
            for position, index in enumerate(rows):
                compared += 1
                same = torch.equal(torch.from_numpy(logits[position]), torch.from_numpy(alone[index][0][0])) and torch.equal(
                    torch.from_numpy(embeddings[position]), torch.from_numpy(alone[index][1][0])
                )
                if not same:
                    differ += 1
                    if differ <= report:
                        gap = np.abs(logits[position] - alone[index][0][0]).max()
                        print(
                            f"    window {index} at position {position} of a batch of {len(rows)}: logits differ by up to {gap:.3g}"
                        )
    finally:
        torch.set_num_threads(previous)
    return compared, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["dymn04", "dymn10", "mn04"])
    parser.add_argument("--windows", type=int, default=8, help="N: batch sizes 1 to N (default %(default)s)")
    parser.add_argument("--lengths", nargs="+", type=float, default=[10.0, 2.5], help="window lengths, seconds")
    parser.add_argument("--shuffles", type=int, default=10, help="shuffled batches per case")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    failed = False
    print(
        f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, float32 on the CPU; "
        f"batch sizes 1 to {args.windows}, every start, {args.shuffles} shuffled batches"
    )
    for name in args.models:
        model = build_model(torch.load(GOLDEN / f"{name}_seed0.pt"))
        for seconds in args.lengths:
            windows = test_windows(args.windows, round(seconds * 32_000))
            for lanes in (1, 2):
                start = time.perf_counter()
                engine = InferenceEngine(model, device="cpu", lanes=lanes)
                compared, differ = check(model, windows, engine, threads=lanes, rng=rng, shuffles=args.shuffles)
                failed |= differ > 0
                print(
                    f"{name}, {seconds:g} s windows, {lanes} lane(s) on {lanes} thread(s): {compared} windows compared, "
                    f"{differ} differ ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
