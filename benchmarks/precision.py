"""How far half-precision inference moves the outputs: float16 and bfloat16 autocast against float32.

    python benchmarks/precision.py                 # CUDA when there is one, else the CPU
    python benchmarks/precision.py --device cpu

Runs `InferenceEngine` (front end in float32 in every case, as the engine always does; the network under
autocast) on the three golden 10 s waveforms with the golden random-weight checkpoints, and prints per
model and precision the largest logit and score differences from float32 and whether the 10 best labels
of each window stay the same. The random weights were calibrated on these inputs (BatchNorm statistics),
but they are not the release weights, which were trained with float16 mixed precision: read the figures
as the size of the rounding effect, not as a statement about tagging quality.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dymn_cli.inference.engine import InferenceEngine, resolve_device
from dymn_cli.models.build import build_model

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"
MODELS = ("dymn04", "dymn10", "mn04")


def scores(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    frontend = torch.load(GOLDEN / "frontend.pt")
    waves = np.stack([frontend["waves"][k].numpy() for k in sorted(frontend["waves"])])
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch {torch.__version__}"
    )
    print(f"{'model':<8}{'precision':<11}{'max |logit diff|':>18}{'max |score diff|':>18}{'same top 10':>13}")
    for name in MODELS:
        model = build_model(torch.load(GOLDEN / f"{name}_seed0.pt"))
        reference, _ = InferenceEngine(model, device=device, precision="float32", lanes=1)(waves)
        top = np.argsort(-reference, axis=1)[:, :10]
        for precision in ("float16", "bfloat16"):
            logits, _ = InferenceEngine(model, device=device, precision=precision, lanes=1)(waves)
            same_top = all(set(a) == set(b) for a, b in zip(top, np.argsort(-logits, axis=1)[:, :10]))
            print(
                f"{name:<8}{precision:<11}{np.abs(logits - reference).max():>18.4f}"
                f"{np.abs(scores(logits) - scores(reference)).max():>18.4f}{'yes' if same_top else 'no':>13}"
            )


if __name__ == "__main__":
    main()
