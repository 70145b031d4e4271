"""Peak memory of `dymn-tag` for a 12-hour file and for an endless input stopped by `--file-timeout`.

    flock /work/suite.lock python benchmarks/input_memory.py [--hours 12] [--timeout 60]

(a) a 10-minute file, for scale;
(b) a 12-hour file (16 kHz FLAC, made once under /tmp/dymn-bench-long; one decode worker);
(c) standard input that never ends: a WAV header that promises 4 GB, then audio for as long as anyone
    reads (a process writes it into a pipe), stopped by `--file-timeout`. Past the first 64 MiB a
    stream is decoded as it comes (FFmpeg), so memory should stay flat however long it runs.

Each run starts through `peak_rss.py` (Linux would count this script's own memory into a command it
spawned straight). dymn10 architecture with the golden random weights, as in end_to_end.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile
from end_to_end import PEAK_RSS, WEIGHTS, long_file  # (this folder: run as a script)

ENDLESS_WAV = r"""
import struct, sys
import numpy as np
rate = 16_000
t = np.arange(rate * 10) / rate
block = (0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t)))
block = (block * 32767).astype("<i2").tobytes()
out = sys.stdout.buffer
header = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
try:
    out.write(header + b"data" + struct.pack("<I", 0xFFFFFFFF))
    while True:
        out.write(block)
except (BrokenPipeError, OSError):
    pass
"""


def measured(args: list[str], *, stdin=None) -> tuple[dict, str]:
    """Run dymn-tag through peak_rss.py: its record (wall, returncode, peak_mib) and its summary line."""
    exe = shutil.which("dymn-tag", path=str(Path(sys.executable).parent)) or "dymn-tag"
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryFile("w+") as stderr:
        result = Path(scratch) / "result.json"
        subprocess.run(
            [sys.executable, str(PEAK_RSS), str(result), exe, "--weights", str(WEIGHTS), *args],
            stdin=stdin,
            stderr=stderr,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        stderr.seek(0)
        lines = stderr.read().strip().splitlines()
        return json.loads(result.read_text()), "\n      ".join(lines[-2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--timeout", type=float, default=60.0, help="--file-timeout for the endless input")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/dymn-bench-long"))
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPU cores; dymn10 architecture (golden random weights); 10 s windows")
    for hours in (600 / 3600, args.hours):  # (long_file writes 10-minute blocks)
        path = long_file(args.folder, hours)
        seconds = soundfile.info(path).duration
        record, summary = measured([str(path), "-o", str(args.folder / "out.jsonl")])
        print(
            f"  {seconds / 3600:.2f} h file: peak RSS {record['peak_mib']:.0f} MiB, {record['wall']:.1f} s "
            f"({seconds / record['wall']:.0f}x realtime, exit {record['returncode']})\n      {summary}"
        )

    writer = subprocess.Popen([sys.executable, "-c", ENDLESS_WAV], stdout=subprocess.PIPE)
    try:
        record, summary = measured(
            ["--file-timeout", f"{args.timeout:g}", "-", "-o", str(args.folder / "out.jsonl")], stdin=writer.stdout
        )
    finally:
        writer.stdout.close()
        writer.kill()
        writer.wait()
    print(
        f"  endless standard input, --file-timeout {args.timeout:g}: peak RSS {record['peak_mib']:.0f} MiB, "
        f"{record['wall']:.1f} s (exit {record['returncode']})\n      {summary}"
    )


if __name__ == "__main__":
    main()
