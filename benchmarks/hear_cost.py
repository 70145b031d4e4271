"""What HEAR's timestamp embeddings cost beside a scene embedding, for a few window / hop choices.

    flock /work/tools/suite.lock python benchmarks/hear_cost.py [--seconds 10] [--weights tests/golden/dymn10_seed0.pt]

Times `dymn_cli.hear` on one clip of white noise (the cost does not depend on the weights' values) and
prints each timestamp setting's time as a multiple of one scene embedding of the same clip (one pass).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dymn_cli import hear

REPO = Path(__file__).resolve().parent.parent
SETTINGS = [(0.16, 0.05), (0.32, 0.05), (0.96, 0.05)]


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--weights", default=str(REPO / "tests/golden/dymn10_seed0.pt"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    audio = torch.rand((1, int(args.seconds * 32_000)), generator=torch.Generator().manual_seed(0)) * 2 - 1
    scene_model = hear.load_model(args.weights)
    hear.get_scene_embeddings(audio, scene_model)  # (warm-up)
    scene = best_of(args.repeats, lambda: hear.get_scene_embeddings(audio, scene_model))
    print(f"{Path(args.weights).name}, {args.seconds:g} s clip, {torch.get_num_threads()} threads")
    print(f"scene embedding (one pass): {scene:.3f} s")
    for window, hop in SETTINGS:
        model = hear.load_model(args.weights, timestamp_window=window, timestamp_hop=hop)
        hear.get_timestamp_embeddings(audio[:, :32_000], model)  # (warm-up)
        took = best_of(args.repeats, lambda: hear.get_timestamp_embeddings(audio, model))
        input_ratio = window / hop
        print(
            f"timestamps, {window * 1000:g} ms windows every {hop * 1000:g} ms: {took:.3f} s, "
            f"{took / scene:.1f}x the scene embedding ({input_ratio:.1f}x its audio)"
        )


if __name__ == "__main__":
    main()
