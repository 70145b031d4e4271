"""Live streams: latency at real time and at 4x, throughput of a full-speed stream against the offline
path, and memory over a day of audio, in one run.

    flock /work/suite.lock python benchmarks/live.py             # (alone on the cores: flock)
    python benchmarks/live.py --realtime 60 --hours 24 --parts latency,throughput,memory

Every figure comes from `dymn-tag` subprocesses with the dymn10 architecture (the golden random
weights: speed and memory do not depend on the values), on this machine's CPUs:

(a) latency: `dymn-tag --live - --pcm s16le:32000:1` (window 10 s, hop 1 s, the live defaults), its
    standard input written by this script 0.1 s of audio at a time at the pace of real time, then of
    4x real time. A window's latency is the time from the write of its last sample to the arrival of
    its record on the process's standard output (so it includes the pipe, the decoding and the JSON).
    Feeding starts once the model has loaded (after --settle seconds).
(b) throughput: the same audio (--minutes, 10 s windows every 1 s) as a stream written as fast as the
    pipe takes it, against `dymn-tag FILE.wav` with the same window and hop; wall time of each
    process, model load included in both.
(c) memory: --hours of audio pumped at full speed through `--live -` (hop 10 s, so that it takes
    minutes), peak RSS through benchmarks/peak_rss.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "tests" / "golden" / "dymn10_seed0.pt"
RATE = 32_000
DYMN_TAG = shutil.which("dymn-tag", path=str(Path(sys.executable).parent)) or "dymn-tag"


def audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Tones that come and go over noise, int16 at 32 kHz."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    x = np.where((t // 2.5) % 2 == 1, 0.3 * np.sin(2 * np.pi * 440 * t), 0.0) + 0.05 * rng.standard_normal(len(t))
    return (np.clip(x, -1, 1) * 32767).astype("<i2")


def latencies(seconds: float, speed: float, settle: float) -> list[float]:
    process = subprocess.Popen(
        [DYMN_TAG, "--live", "-", "--pcm", "s16le:32000:1", "--weights", str(WEIGHTS), "-q"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    arrivals: list[tuple[float, dict]] = []

    def read() -> None:
        for line in process.stdout:
            arrivals.append((time.monotonic(), json.loads(line)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(settle)
    data = audio(seconds).tobytes()
    chunk = int(0.1 * RATE) * 2
    written: list[float] = []  # monotonic time each chunk was written
    start = time.monotonic()
    for k, offset in enumerate(range(0, len(data), chunk)):
        process.stdin.write(data[offset : offset + chunk])
        process.stdin.flush()
        written.append(time.monotonic())
        time.sleep(max(0.0, start + (k + 1) * 0.1 / speed - time.monotonic()))
    process.stdin.close()
    process.wait()
    reader.join()
    result = []
    for arrived, record in arrivals:
        if record["type"] == "window" and record["end"] <= seconds:  # (the last, zero-padded one waits for the end)
            last_chunk = int(np.ceil(record["end"] / 0.1)) - 1
            result.append(arrived - written[last_chunk])
    return result


def throughput(minutes: float, folder: Path) -> tuple[float, float]:
    samples = audio(minutes * 60)
    path = folder / "stream.wav"
    soundfile.write(path, samples, RATE, subtype="PCM_16")
    common = ["--weights", str(WEIGHTS), "--window", "10", "--hop", "1", "-q"]
    start = time.perf_counter()
    live = subprocess.run(
        [DYMN_TAG, "--live", "-", "--pcm", "s16le:32000:1", *common], input=samples.tobytes(), capture_output=True, check=True
    )
    live_wall = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([DYMN_TAG, str(path), "--format", "jsonl", *common], capture_output=True, check=True)
    offline_wall = time.perf_counter() - start
    assert live.stdout.count(b'"window"') == minutes * 60 - 9
    return live_wall, offline_wall


def memory(hours: float, folder: Path) -> dict:
    result = folder / "rss.json"
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "peak_rss.py"),
            str(result),
            DYMN_TAG,
            "--live",
            "-",
            "--pcm",
            "s16le:32000:1",
            "--weights",
            str(WEIGHTS),
            "--hop",
            "10",
            "--events",
            "-q",
            "-o",
            os.devnull,
        ],
        stdin=subprocess.PIPE,
    )
    minute = audio(60.0).tobytes()
    for _ in range(int(hours * 60)):
        process.stdin.write(minute)
    process.stdin.close()
    process.wait()
    return json.loads(result.read_text())


def describe(values: list[float]) -> str:
    p = np.percentile(values, [50, 90, 99])
    return f"p50 {p[0]:.3f} s, p90 {p[1]:.3f} s, p99 {p[2]:.3f} s, max {max(values):.3f} s ({len(values)} windows)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realtime", type=float, default=60.0, help="seconds of audio fed at real time (and 4x as much at 4x)")
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of audio for the throughput")
    parser.add_argument("--hours", type=float, default=24.0, help="hours of audio for the memory")
    parser.add_argument("--parts", default="latency,throughput,memory", help="which measurements, comma-separated")
    parser.add_argument("--settle", type=float, default=6.0, help="seconds for the model to load before feeding")
    args = parser.parse_args()
    print(f"dymn-tag --live, dymn10 (random weights), {os.cpu_count()} CPUs, torch threads from the default")
    parts = set(args.parts.split(","))
    for speed, seconds in ((1.0, args.realtime), (4.0, 4 * args.realtime)) if "latency" in parts else ():
        found = latencies(seconds, speed, args.settle)
        print(f"latency at {speed:g}x real time ({seconds:g} s of audio, window 10 s, hop 1 s): {describe(found)}")
    with tempfile.TemporaryDirectory() as folder:
        if "throughput" in parts:
            live_wall, offline_wall = throughput(args.minutes, Path(folder))
            audio_seconds = args.minutes * 60
            print(
                f"throughput, {args.minutes:g} min of audio, window 10 s, hop 1 s: live stream at full speed {live_wall:.1f} s "
                f"({audio_seconds / live_wall:.0f}x real time), offline file {offline_wall:.1f} s "
                f"({audio_seconds / offline_wall:.0f}x); live / offline time {live_wall / offline_wall:.2f}"
            )
        if "memory" in parts:
            rss = memory(args.hours, Path(folder))
            print(
                f"memory: {args.hours:g} h of audio through a pipe at full speed (hop 10 s, --events): "
                f"{rss['wall']:.0f} s, exit {rss['returncode']}, peak RSS {rss['peak_mib']:.0f} MiB"
            )


if __name__ == "__main__":
    main()
