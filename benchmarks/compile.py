"""What `--compile` (torch.compile) costs and gains, measured in one run: the engine with and without it.

    python benchmarks/compile.py                  # dymn10 on the CPU, batch 16
    python benchmarks/compile.py --device cuda    # on a GPU (float16 autocast, the engine's default there)

Prints the first call (compilation included, with an empty compile cache, as on a user's first run;
later runs reuse torch's on-disk cache), the fastest of the following calls in ms per window against
the eager engine's, and the first call at a new batch size (torch.compile specialises on shapes: a
run's last, partial batch meets it). Random weights: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

# Before torch is imported: a cold compile cache, as on a user's first run.
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="dymn-compile-cache-")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dymn_cli.inference.engine import InferenceEngine  # noqa: E402
from dymn_cli.models.build import create_model  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    waves = (np.random.default_rng(0).standard_normal((args.batch, 320_000)) * 0.1).astype(np.float32)
    engines = {
        "eager": InferenceEngine(create_model(family="dymn", width=1.0), device=args.device),
        "compiled": InferenceEngine(create_model(family="dymn", width=1.0), device=args.device, compile=True),
    }
    print(
        f"torch {torch.__version__}, device {args.device}, dymn10, batch {args.batch}, "
        f"{engines['eager'].lanes} lane(s) eager, {engines['compiled'].lanes} compiled"
    )
    for name, engine in engines.items():
        first = timed(lambda: engine(waves))
        best = min(timed(lambda: engine(waves)) for _ in range(args.rounds))
        print(f"{name:9s} first call {first:7.1f} s, then {1e3 * best / args.batch:6.2f} ms per window", end="")
        if name == "compiled":
            print(
                f", first call at batch {args.batch // 2 + 1}: {timed(lambda: engine(waves[: args.batch // 2 + 1])):.1f} s",
                end="",
            )
        print()


if __name__ == "__main__":
    main()
