"""int8 against float32, as `dymn-tag export --int8` reports it, for the calibrated test checkpoints and
both int8 modes: top-1 agreement, top-10 overlap, score differences, size and speed against float32.

    python benchmarks/int8_agreement.py [--calibrate FOLDER] [--models dymn04 dymn10 mn04]

The checkpoints are the golden random ones with BatchNorm statistics measured on audio
(`tests/calibrated.py`): agreement figures on the raw random checkpoints mean nothing. Without
`--calibrate`, the folder is the example recording and `tests/calibrated.py`'s eight calibration signals
at 30 s each. Every graph is kept whatever its agreement (`--min-agreement 0`); the figures are what the
command prints on its held-out windows.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # (tests.calibrated: the calibrated checkpoints)

REPORT = re.compile(r"dymn-tag:\s+(int8 against float32 on \d+ held-out|top-1 agreement .*|score difference .*|size .*)")


def default_calibration(folder: Path) -> Path:
    from tests.calibrated import RATE, calibration_waveforms

    shutil.copy(ROOT / "examples" / "audio" / "chimes_and_noise.wav", folder)
    for index, waveform in enumerate(calibration_waveforms(seconds=30.0)):
        soundfile.write(folder / f"signal{index}.wav", waveform, RATE)
    return folder


def report(checkpoint: Path, mode: str, calibrate: Path, output: Path) -> str:
    command = [sys.executable, "-m", "dymn_cli", "export", "--weights", str(checkpoint), "-o", str(output)]
    command += ["--int8", "--int8-mode", mode, "--calibrate", str(calibrate), "--min-agreement", "0"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    return "; ".join(m.group(1) for line in done.stderr.splitlines() if (m := REPORT.search(line)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", type=Path, help="calibration audio (default: generated, see above)")
    parser.add_argument("--models", nargs="+", default=["dymn04", "dymn10", "mn04"])
    args = parser.parse_args()
    from tests.calibrated import calibrated_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        calibrate = args.calibrate or default_calibration(Path(folder))
        for name in args.models:
            checkpoint = calibrated_checkpoint(name)
            for mode in ("static", "weights"):
                print(
                    f"{name} (calibrated) {mode}: {report(checkpoint, mode, calibrate, Path(folder) / 'int8.onnx')}", flush=True
                )


if __name__ == "__main__":
    main()
