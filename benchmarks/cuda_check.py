"""The GPU targets of issue #7 in one short run, for a session that is lent a GPU.

    python benchmarks/cuda_check.py                    # CUDA; a 10-hour corpus (made once, mostly links)
    python benchmarks/cuda_check.py --hours 0.5 --device cpu   # the same on the CPU, as a dry run

1. Engine only (front end on the device, pinned memory, float16 autocast as on CUDA by default, then
   float32): dymn10 windows per second at several batch sizes, fastest of the rounds, synchronised.
2. End to end: `dymn-tag FOLDER -o out.jsonl --batch-size B` on a corpus of `--hours` hours: wall
   seconds, audio seconds per wall second, and dymn-tag's own summary (where the time went). The corpus
   is the 40-file benchmark corpus of `end_to_end.py`, linked as many times as the hours need (decoding
   costs the same for a linked file), so that making it takes seconds, not minutes.
Random weights (the golden dymn10 checkpoint): speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile
import torch
from cpu_paths import fastest  # (this folder: run as a script)
from end_to_end import WEIGHTS, make_corpus, run_dymn_tag

from dymn_cli.inference.engine import InferenceEngine, resolve_device
from dymn_cli.models.build import build_model
from dymn_cli.models.checkpoints import load_checkpoint


def engine_rates(device: torch.device, batches: list[int], rounds: int) -> None:
    model = build_model(load_checkpoint(WEIGHTS))
    waves = (np.random.default_rng(0).standard_normal((max(batches), 320_000)) * 0.1).astype(np.float32)
    for precision in ("float16", "float32") if device.type == "cuda" else ("float32",):
        engine = InferenceEngine(model, device=device, precision=precision)
        cells = []
        for batch in batches:
            # (after a warm-up call, in which cuDNN picks its algorithms; the engine returns numpy, so
            # every timed call has finished on the device)
            best = fastest(lambda: engine(waves[:batch]), rounds)  # noqa: B023 - called right here
            cells.append(f"B={batch}: {batch / best:,.0f}/s")
        print(f"1. engine, dymn10, {precision}, windows per second: " + ", ".join(cells), flush=True)


def linked_corpus(root: Path, hours: float) -> tuple[Path, float]:
    """A folder with `hours` of audio: the benchmark corpus in copy_0, hard links to it in copy_1..."""
    originals = make_corpus(root / "copy_0")
    seconds = sum(soundfile.info(p).duration for p in originals)
    copies = max(1, math.ceil(hours * 3600 / seconds))
    for n in range(1, copies):
        folder = root / f"copy_{n}"
        folder.mkdir(exist_ok=True)
        for path in originals:
            if not (folder / path.name).exists():
                os.link(path, folder / path.name)
    for surplus in root.glob("copy_*"):  # (links left by an earlier run that asked for more hours)
        if int(surplus.name.removeprefix("copy_")) >= copies:
            shutil.rmtree(surplus)
    return root, copies * seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--hours", type=float, default=10.0)
    parser.add_argument("--batches", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64, help="dymn-tag's --batch-size end to end")
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/dymn-cuda-corpus"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}), {os.cpu_count()} CPU cores, torch {torch.__version__}", flush=True)
    engine_rates(device, args.batches, args.rounds)

    folder, audio_s = linked_corpus(args.corpus, args.hours)
    output = args.corpus.parent / "dymn-cuda-out.jsonl"
    output.unlink(missing_ok=True)
    extra = ["--device", device.type, "--batch-size", str(args.batch_size)]
    wall, peak, summary = run_dymn_tag(folder, output, extra)
    print(
        f"2. end to end, {audio_s / 3600:.1f} h of audio, --batch-size {args.batch_size}: {wall:.1f} s, "
        f"{audio_s / wall:,.0f}x realtime, peak RSS {peak:.0f} MiB"
    )
    print(f"   dymn-tag's summary: {summary.removeprefix('dymn-tag: ')}")


if __name__ == "__main__":
    main()
