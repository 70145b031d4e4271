"""Repack the authors' golden vectors (../shared/golden) into the lean files the tests use.

Run once from the repository root when the shared golden set changes:
    python tests/golden/make_lean.py ../shared/golden
The `*_io.pt` files repeat the front end's waveforms and log-mels for every model; here those are
stored once (`frontend.pt`) and each model keeps its own float64 inputs and all outputs (`<model>_cases.pt`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

MODELS = ("dymn04", "dymn10", "mn04")


def main(source: Path, target: Path) -> None:
    frontend = torch.load(source / "frontend_seed0.pt")
    frontend["melbank"] = torch.load(source / "melbank.pt")["melbank"]
    torch.save(frontend, target / "frontend.pt")
    mels = torch.cat([frontend["mels"][k] for k in sorted(frontend["mels"])])[:, None]
    waveforms = {"f32_short_padded": frontend["short_3.3s"], "f32_windows_w10_h2.5": frontend["long_23.7s"]}

    for model in MODELS:
        cases = torch.load(source / f"{model}_seed0_io.pt")
        outputs = {}
        for name, case in cases.items():
            case = dict(case)
            if name == "f32_T1000":
                assert torch.equal(case.pop("input"), mels), f"{model}: f32_T1000 input is not the front end's mels"
            if "waveform" in case:
                assert torch.equal(case.pop("waveform"), waveforms[name]), f"{model} {name}: unexpected waveform"
            outputs[name] = case
        torch.save(outputs, target / f"{model}_cases.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).parent)
