"""The CPU choices behind the engine, each against its alternative, measured in one run (dymn10, float32).

    python benchmarks/cpu_paths.py
    python benchmarks/cpu_paths.py --rounds 10

1. 1x1 convolutions of one sample on one thread (what a lane runs): `models.common.conv2d` (oneDNN)
   against `F.conv2d`, whose own choice is im2col + GEMM there; dymn10's 1x1 layer shapes.
2. The context generator's means over a channels-last map: over the `[F, T, C]` view against torch's
   mean over the tensor's F and T axes.
3. dymn10 on one thread, ms per window in calls of 1, 2, 4 and 8 windows (a lane's share of a batch).
4. The engine (front end + network) on a batch of 16: lanes (one per torch thread) against one lane
   running torch's threads.
5. Autocast on the CPU: float32 against bfloat16 and float16, dymn10 at batch 16.
6. What sharing one process costs the lanes: the engine's lanes (threads, 8 windows each) against as
   many single-threaded processes running 8 windows each at the same time; CPU ms per window in a lane.
Random weights (speed does not depend on their values); fastest call of the rounds, after a warm-up.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from dymn_cli.inference.engine import InferenceEngine
from dymn_cli.models.build import create_model
from dymn_cli.models.common import conv2d
from dymn_cli.models.dymn import _profiles

# (in, out, F, T) of dymn10's 1x1 convolutions at the resolutions they run at, for a 10 s window
ONE_BY_ONE = [
    (16, 64, 64, 500),
    (64, 24, 32, 250),
    (24, 72, 32, 250),
    (72, 24, 32, 250),
    (40, 120, 16, 125),
    (120, 40, 16, 125),
    (80, 480, 8, 63),
    (480, 112, 8, 63),
    (160, 960, 4, 32),
    (960, 160, 4, 32),
]
MAPS = [(16, 64, 500), (24, 32, 250), (40, 16, 125), (80, 8, 63), (112, 8, 63), (160, 4, 32)]  # (C, F, T)


def fastest(fn: Callable[[], object], rounds: int) -> float:
    """Seconds of the fastest of `rounds` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def one_thread(fn: Callable[[], object], rounds: int) -> float:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fastest(fn, rounds)
    finally:
        torch.set_num_threads(threads)


def lane_process(rounds: int, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    """Item 6: one single-threaded lane in a process of its own; reports its fastest call of 8 windows."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    engine = InferenceEngine(create_model(family="dymn", width=1.0), device="cpu", lanes=1)
    waves = (np.random.default_rng(0).standard_normal((8, 320_000)) * 0.1).astype(np.float32)
    engine(waves)  # warm-up
    start.wait()
    results.put(fastest(lambda: engine(waves), rounds))


def lanes_as_processes(n: int, rounds: int) -> float:
    """Item 6: CPU ms per window of `n` concurrent single-lane processes (the mean of their fastest calls)."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(n), context.Queue()
    processes = [context.Process(target=lane_process, args=(rounds, start, results)) for _ in range(n)]
    for process in processes:
        process.start()
    seconds = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return 1e3 * sum(seconds) / len(seconds) / 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    torch.manual_seed(0)
    model = create_model(family="dymn", width=1.0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fastest of {rounds}")

    with torch.inference_mode():
        ours = theirs = 0.0
        for c, o, f, t in ONE_BY_ONE:
            x = torch.randn(1, c, f, t).contiguous(memory_format=torch.channels_last)
            w, b = torch.randn(o, c, 1, 1), torch.randn(o)
            ours += one_thread(lambda: conv2d(x, w, b), rounds)
            theirs += one_thread(lambda: F.conv2d(x, w, b), rounds)
        print(
            f"\n1. 1x1 convolutions, one sample, one thread: oneDNN {1e3 * ours:.2f} ms, "
            f"F.conv2d {1e3 * theirs:.2f} ms ({theirs / ours:.2f}x)"
        )

        ours = theirs = 0.0
        for c, f, t in MAPS:
            x = torch.randn(1, c, f, t).contiguous(memory_format=torch.channels_last)
            ours += one_thread(lambda: _profiles(x), rounds)
            theirs += one_thread(lambda: (x.mean(dim=3), x.mean(dim=2)), rounds)
        print(
            f"2. context means over channels-last maps, one thread: [F, T, C] view {1e3 * ours:.2f} ms, "
            f"torch's mean {1e3 * theirs:.2f} ms ({theirs / ours:.1f}x)"
        )

        mels = torch.randn(8, 1, 128, 1000)
        cells = {n: 1e3 * one_thread(lambda: model(mels[:n]), rounds) / n for n in (1, 2, 4, 8)}
        print("3. dymn10, one thread, ms per window in calls of " + ", ".join(f"{n}: {ms:.1f}" for n, ms in cells.items()))

    waves = (np.random.default_rng(0).standard_normal((16, 320_000)) * 0.1).astype(np.float32)
    lanes = InferenceEngine(model, device="cpu")
    one_lane = InferenceEngine(model, device="cpu", lanes=1)
    for engine in (lanes, one_lane):
        engine(waves)  # warm-up
    best = {engine.lanes: 1e3 * fastest(lambda: engine(waves), rounds) / len(waves) for engine in (lanes, one_lane)}
    print(
        f"4. engine, batch of 16, ms per window (front end included): {lanes.lanes} lanes {best[lanes.lanes]:.1f}, "
        f"1 lane on {torch.get_num_threads()} threads {best[1]:.1f}"
    )
    shared = np.repeat(waves[:8], lanes.lanes, axis=0)  # 8 windows a lane
    threads = 1e3 * fastest(lambda: lanes(shared), rounds) / 8  # a call's wall time is each lane's CPU time
    processes = lanes_as_processes(lanes.lanes, rounds)

    x = torch.randn(16, 1, 128, 1000)
    with torch.inference_mode():
        speeds = {"float32": fastest(lambda: model(x), rounds)}
        for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):

            def autocast_call(dtype: torch.dtype = dtype) -> None:
                with torch.autocast("cpu", dtype=dtype):
                    model(x)

            speeds[name] = fastest(autocast_call, max(1, rounds // 2))
    print("5. dymn10 at batch 16, ms per window: " + ", ".join(f"{k} {1e3 * v / 16:.1f}" for k, v in speeds.items()))
    print(
        f"6. {lanes.lanes} lanes at once, 8 windows each, CPU ms per window in a lane (front end included): "
        f"as threads of one process {threads:.1f}, as {lanes.lanes} processes {processes:.1f} ({threads / processes:.2f}x)"
    )


if __name__ == "__main__":
    main()
