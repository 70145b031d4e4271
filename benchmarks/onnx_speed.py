"""Per-window CPU time of an exported graph in onnxruntime (float32 and int8) and in OpenVINO, against
the torch engine and the authors' code, measured in one run, at 1 and 2 threads and batch 1 and 16.

    python benchmarks/onnx_speed.py --weights CKPT.pt                   # exports the graphs with dymn-tag export
    python benchmarks/onnx_speed.py --weights CKPT.pt --graph X.onnx --int8 X.int8.onnx
    python benchmarks/onnx_speed.py --weights CKPT.pt --graph X.onnx --quick   # a smoke run, not figures

Without `--graph`, the graphs are exported from `--weights` by `dymn-tag export` (float32, and int8
calibrated on examples/audio) where this checkout has it, else the ONNX rows are skipped with a line
saying so. Speed does not depend on the weights' values: the golden random checkpoints do.

Method (as benchmarks/model_speed.py): every cell (runtime, threads, batch) is warmed up, then timed once
per round, round after round; its figure is its fastest call divided by the batch. Interleaving spreads
the load of other processes over every cell, and the fastest call is the one they disturbed least. Even
so, figures mean something only on a quiet machine: say so beside any you report.

Rows:
- torch engine: `InferenceEngine`, as `dymn-tag` runs it (a lane per thread, each single-threaded);
- authors' code: `benchmarks/authors_reference.py` under `torch.no_grad`, torch's threads (DyMN only);
- ORT float32 / int8: `OnnxEngine`, as `dymn-tag --weights X.onnx` runs it (a lane per thread);
- ORT float32, one session of N threads: onnxruntime's own intra-op threads instead of lanes;
- ORT float32, optimisation level L (one thread): `disabled`, `basic`, `extended` (no layout
  transformer: the NCHWc layout pass belongs to `all`, the default);
- OpenVINO float32: where `openvino` is installed (`pip install openvino`), compiled for the CPU with
  N inference threads.

AVX2 against AVX-512: the machine's vector extensions are printed first. On an AVX-512 machine,
`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2` gives torch's AVX2 figures; onnxruntime picks its
kernels at run time and has no such switch, so its AVX2 figures need an AVX2 machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RATE = 32_000
Run = Callable[[np.ndarray], object]


@dataclass
class Cell:
    label: str
    threads: int
    make: Callable[[], Run]
    run: Run | None = None
    best: dict[int, float] = field(default_factory=dict)  # batch -> fastest call, seconds


def vector_extensions() -> str:
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    found = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags.split()]
    return ", ".join(found) or "no AVX2"


def export_graphs(weights: Path, folder: Path, calibrate: Path) -> tuple[Path | None, Path | None]:
    """float32 and int8 graphs of `weights` by `dymn-tag export`, or None (with a line) where it fails.
    The int8 graph is kept whatever its agreement (`--min-agreement 0`): speed does not depend on it."""
    if importlib.util.find_spec("dymn_cli.export") is None:
        print("ONNX rows skipped: dymn_cli.export is not in this checkout (give --graph FILE.onnx)")
        return None, None
    made: list[Path | None] = []
    for name, extra in (("float32.onnx", []), ("int8.onnx", ["--int8", "--calibrate", str(calibrate), "--min-agreement", "0"])):
        command = [sys.executable, "-m", "dymn_cli", "export", "--weights", str(weights), "-o", str(folder / name), *extra]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name}: not exported ({(done.stderr.strip().splitlines() or ['?'])[-1]})")
        made.append(folder / name if done.returncode == 0 else None)
    return made[0], made[1]


def torch_cells(weights: Path, threads: int) -> list[Cell]:
    import torch
    from authors_reference import AuthorsLogMel, authors_dymn_forward  # (this folder: run as a script)

    from dymn_cli.inference.engine import InferenceEngine
    from dymn_cli.models.dymn import DyMN
    from dymn_cli.models.ensemble import load_members

    members = load_members(model=None, weights=[weights], sha256=None, progress=False)

    def engine() -> Run:
        built = InferenceEngine(members.network, frontend=members.frontend, device="cpu", lanes=threads)
        return lambda batch: (torch.set_num_threads(threads), built(batch))

    def authors() -> Run:
        frontend = AuthorsLogMel(members.frontend)

        def run(batch: np.ndarray) -> object:
            torch.set_num_threads(threads)
            with torch.no_grad():
                return authors_dymn_forward(members.network, frontend(torch.from_numpy(batch)).unsqueeze(1))

        return run

    cells = [Cell("torch engine", threads, engine)]
    if isinstance(members.network, DyMN):
        cells.append(Cell("authors' code", threads, authors))
    return cells


def ort_session(graph: Path, threads: int, level: str = "all") -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    session = ort.InferenceSession(str(graph), sess_options=options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"waveform": batch})


def openvino_run(graph: Path, threads: int) -> Run:
    import openvino

    compiled = openvino.Core().compile_model(str(graph), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    return lambda batch: compiled([batch])


def onnx_cells(graph: Path | None, int8: Path | None, threads: int) -> list[Cell]:
    from dymn_cli.inference.onnx_engine import OnnxEngine

    cells = []
    for label, path in (("ORT float32", graph), ("ORT int8", int8)):
        if path is not None:
            cells.append(Cell(label, threads, lambda path=path: OnnxEngine(path, device="cpu", lanes=threads)))
    if graph is None:
        return cells
    if threads > 1:
        cells.append(Cell(f"ORT float32, one session of {threads} threads", threads, lambda: ort_session(graph, threads)))
    else:
        for level in ("disabled", "basic", "extended"):
            cells.append(
                Cell(f"ORT float32, optimisation level {level}", threads, lambda level=level: ort_session(graph, 1, level))
            )
    if importlib.util.find_spec("openvino") is not None:
        cells.append(Cell("OpenVINO float32", threads, lambda: openvino_run(graph, threads)))
    elif threads == 1:
        print("OpenVINO rows skipped: openvino is not installed (pip install openvino)")
    return cells


def measure(cells: list[Cell], batches: list[int], seconds: float, rounds: int) -> None:
    rng = np.random.default_rng(0)
    inputs = {b: rng.normal(0, 0.1, (b, round(seconds * RATE))).astype(np.float32) for b in batches}
    for cell in list(cells):
        try:
            cell.run = cell.make()
        except RuntimeError as error:  # (OpenVINO's CPU plugin under ONEDNN_MAX_CPU_ISA=AVX2: no Softmax kernel)
            print(f"{cell.label} ({cell.threads} threads) skipped: {' '.join(str(error).split())[:160]}")
            cells.remove(cell)
            continue
        for batch in batches:
            cell.run(inputs[batch])  # warm-up (and first-call setup)
    for _ in range(rounds):
        for cell in cells:
            for batch in batches:
                start = time.perf_counter()
                cell.run(inputs[batch])
                elapsed = time.perf_counter() - start
                cell.best[batch] = min(cell.best.get(batch, elapsed), elapsed)


def report(cells: list[Cell], batches: list[int]) -> None:
    """ms per window, and the torch engine's time over each row's (above 1: faster than the torch engine)."""
    engine = {c.threads: c for c in cells if c.label == "torch engine"}
    print(f"{'runtime':48} {'threads':>7} " + " ".join(f"{f'batch {b}: ms/window (x torch)':>30}" for b in batches))
    for cell in cells:
        figures = []
        for batch in batches:
            ms = 1000 * cell.best[batch] / batch
            base = engine.get(cell.threads)
            ratio = f" ({base.best[batch] / cell.best[batch]:.2f}x)" if base is not None else ""
            figures.append(f"{f'{ms:.1f}{ratio}':>30}")
        print(f"{cell.label:48} {cell.threads:>7} " + " ".join(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=ROOT / "tests" / "golden" / "dymn10_seed0.pt", help="checkpoint")
    parser.add_argument("--graph", type=Path, help="its float32 graph (default: exported now)")
    parser.add_argument("--int8", type=Path, help="its int8 graph (default: exported now)")
    parser.add_argument(
        "--calibrate", type=Path, default=ROOT / "examples" / "audio", help="audio to calibrate int8 on (40 s at least)"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=float, default=10.0, help="window length")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 1 s windows, batch 1 and 2")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.batches = 1, 1.0, [1, 2]
    print(f"CPU vector extensions: {vector_extensions()}; {args.seconds:g} s windows, best of {args.rounds} rounds")
    with tempfile.TemporaryDirectory() as folder:
        graph, int8 = args.graph, args.int8
        if graph is None:
            graph, exported_int8 = export_graphs(args.weights, Path(folder), args.calibrate)
            int8 = int8 or exported_int8
        elif int8 is None:
            print("ORT int8 rows skipped: give --int8 FILE.onnx (or leave out --graph to export both)")
        cells = [c for t in args.threads for c in [*torch_cells(args.weights, t), *onnx_cells(graph, int8, t)]]
        measure(cells, args.batches, args.seconds, args.rounds)
    report(cells, args.batches)


if __name__ == "__main__":
    main()
