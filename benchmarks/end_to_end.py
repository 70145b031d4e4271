"""End to end: `dymn-tag` on a folder against the authors' way of tagging it, measured in one run.

    python benchmarks/end_to_end.py                      # corpus in /tmp/dymn-bench-corpus (made once)
    python benchmarks/end_to_end.py --long-hours 3       # also: a half-hour and a 3-hour file, peak RSS
    python benchmarks/end_to_end.py --hop 2.5            # the hop of the authors' example

Corpus: 40 files of 20 s to 5 min, wav/flac/mp3/ogg at 16, 44.1 and 48 kHz, mono and stereo
(synthetic tones and noise; tagging speed does not depend on what the audio is).

(a) baseline, as the authors' windowed example does it: whole file loaded and resampled
    (soundfile + soxr HQ, i.e. librosa.load), then one 10 s window at a time at batch 1 through their
    front end and their network (re-implemented in `authors_reference.py`, which reproduces the golden
    outputs: BatchNorm as separate passes, per-sample mixed kernels folded into conv groups), under
    torch.no_grad;
(b) `dymn-tag FOLDER -o out.jsonl` as a subprocess (process start and model load included), and once
    more leaving malloc at glibc's defaults (GLIBC_TUNABLES set: see dymn_cli/allocator.py);
(c) with `--graph X.onnx`: the same run over that exported graph in onnxruntime (`--weights X.onnx`).
Both use the dymn10 architecture with the golden random weights (the speed does not depend on the
values; the release weights are not needed). Prints audio seconds per wall second for both and
their ratio, per-stage times and peak RSS, and how far apart their scores are. (Far, for a few files:
with random weights the logits reach 1e7, and float32 rounding, which differs between any two ways of
computing the network, can flip a sigmoid. The two formulations agree to 1e-7 in float64:
tests/test_benchmark_baseline.py.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
from authors_reference import AuthorsLogMel, authors_dymn_forward  # (this folder: run as a script)

from dymn_cli.audio.decode import load_audio, stream_audio
from dymn_cli.audio.windows import WindowGrid
from dymn_cli.models.build import build_model
from dymn_cli.models.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "tests" / "golden" / "dymn10_seed0.pt"
PEAK_RSS = Path(__file__).resolve().parent / "peak_rss.py"
FORMATS = [("wav", "PCM_16"), ("flac", "PCM_16"), ("mp3", "MPEG_LAYER_III"), ("ogg", "VORBIS")]
RATES = [16_000, 44_100, 48_000]


def synth(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    freqs = rng.uniform(100, 4000, size=3)
    x = sum(0.2 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * t / rng.uniform(2, 9))) / 2 for f in freqs)
    x = x + 0.05 * rng.standard_normal(len(t))
    stereo = np.stack([x, np.roll(x, 37)], axis=1)
    return (stereo if channels == 2 else x[:, None]).astype(np.float32)


def make_corpus(folder: Path, n_files: int = 40) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    durations = np.geomspace(20, 300, n_files)
    paths = []
    for i, seconds in enumerate(durations):
        extension, subtype = FORMATS[i % len(FORMATS)]
        rate, channels = RATES[i % len(RATES)], 1 + (i // 2) % 2
        path = folder / f"{i:02d}_{int(seconds)}s_{rate // 1000}k_{channels}ch.{extension}"
        if not path.exists():
            tmp = path.with_suffix(".part." + extension)
            audio = synth(seconds, rate, channels, seed=i)
            # Block-wise: libsndfile's Vorbis encoder can crash on one very large write.
            with soundfile.SoundFile(tmp, "w", rate, channels, subtype, format=extension.upper()) as out:
                for start in range(0, len(audio), 1 << 15):
                    out.write(audio[start : start + (1 << 15)])
            tmp.rename(path)
        paths.append(path)
    return paths


def baseline(paths: list[Path], hop: float) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The authors' windowed loop: load + resample whole file, then one window at a time at batch 1."""
    torch.set_num_threads(os.cpu_count() or 1)
    model = build_model(load_checkpoint(WEIGHTS)).eval()
    frontend = AuthorsLogMel()
    grid = WindowGrid.from_seconds(window=10.0, hop=hop, sample_rate=32_000)
    scores, decode_s, model_s = {}, 0.0, 0.0
    with torch.no_grad():
        for path in paths:
            t0 = time.perf_counter()
            waveform = load_audio(path)
            t1 = time.perf_counter()
            probs = []
            for window in grid.cut(waveform):
                logits, _ = authors_dymn_forward(model, frontend(torch.from_numpy(window)[None]).unsqueeze(1))
                probs.append(torch.sigmoid(logits)[0].numpy())
            model_s += time.perf_counter() - t1
            decode_s += t1 - t0
            scores[str(path)] = np.mean(probs, axis=0)
    return scores, {"decode+resample": decode_s, "front end+model": model_s}


# A tunable at its default value: dymn-tag then leaves all of malloc's settings alone.
GLIBC_DEFAULTS = {"GLIBC_TUNABLES": "glibc.malloc.perturb=0"}


def run_dymn_tag(
    inputs: Path, output: Path, extra: list[str], env: dict[str, str] | None = None, weights: Path = WEIGHTS
) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB: the largest of the dymn-tag process and its decode workers) and the
    summary line of one `dymn-tag` run (started through `peak_rss.py`, see there why)."""
    exe = shutil.which("dymn-tag", path=str(Path(sys.executable).parent)) or "dymn-tag"
    command = [exe, str(inputs), "-o", str(output), "--weights", str(weights), *extra]
    with tempfile.TemporaryFile("w+") as stderr, tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        subprocess.run(
            [sys.executable, str(PEAK_RSS), str(result), *command], stderr=stderr, env={**os.environ, **(env or {})}, check=True
        )
        record = json.loads(result.read_text())
        stderr.seek(0)
        lines = stderr.read().strip().splitlines()
    if record["returncode"] != 0:
        raise SystemExit(f"dymn-tag failed ({record['returncode']}): " + "\n".join(lines))
    return record["wall"], record["peak_mib"], lines[-1]


def summary_seconds(summary: str) -> float:
    """The run time in dymn-tag's summary line: "... of audio in 0:01:05 (...)" (or an older "in 65.2 s")."""
    clock = re.search(r" in (\d+):(\d\d):(\d\d)\b", summary)
    if clock is not None:
        hours, minutes, seconds = map(int, clock.groups())
        return float(3600 * hours + 60 * minutes + seconds)
    return float(re.search(r" in ([0-9.]+) s", summary).group(1))


def decode_only(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        for _ in stream_audio(path, block_seconds=60.0):
            pass
    return time.perf_counter() - start


def long_file(folder: Path, hours: float) -> Path:
    path = folder / f"long_{hours:g}h.flac"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        rate, block = 16_000, 600
        with soundfile.SoundFile(path.with_suffix(".part.flac"), "w", rate, 1, "PCM_16", format="FLAC") as out:
            for i in range(round(hours * 3600 / block)):
                out.write(synth(block, rate, 1, seed=1000 + i))
        path.with_suffix(".part.flac").rename(path)
    return path


def long_files(folder: Path, hours: float) -> None:
    """Memory is flat: the peak RSS of a half-hour file and of a `hours` one."""
    print("\none long file at a time (16 kHz flac; one decode worker):")
    for length in (0.5, hours):
        path = long_file(folder, length)
        seconds = soundfile.info(path).duration
        wall, peak, _ = run_dymn_tag(path, folder / "long.jsonl", [])
        wall_plain, peak_plain, _ = run_dymn_tag(path, folder / "long.jsonl", [], GLIBC_DEFAULTS)
        raw_mib = seconds * 32_000 * 4 / 2**20
        print(
            f"  {seconds / 3600:.2f} h ({raw_mib:.0f} MiB as a 32 kHz float32 waveform): {wall:.1f} s, "
            f"{seconds / wall:.0f}x realtime, peak RSS {peak:.0f} MiB "
            f"(glibc malloc defaults: {wall_plain:.1f} s, {peak_plain:.0f} MiB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/dymn-bench-corpus"))
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--long-hours", type=float, default=0.0)
    parser.add_argument(
        "--hop", type=float, default=10.0, help="seconds between 10 s windows, for both (the authors' example defaults to 2.5)"
    )
    parser.add_argument("--dymn-tag-args", default="", help="extra options for dymn-tag, e.g. '--workers 2'")
    parser.add_argument("--graph", type=Path, help="also (c): dymn-tag --weights GRAPH.onnx (dymn-tag export of dymn10)")
    args = parser.parse_args()

    paths = make_corpus(args.corpus, args.files)
    audio_s = sum(soundfile.info(p).duration for p in paths)
    print(
        f"corpus: {len(paths)} files, {audio_s / 60:.1f} min of audio, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}; 10 s windows every {args.hop:g} s"
    )

    output = args.corpus.parent / "dymn-bench-out.jsonl"
    output.unlink(missing_ok=True)
    tag_args = ["--hop", str(args.hop), *args.dymn_tag_args.split()]
    wall_tag, peak_tag, summary = run_dymn_tag(args.corpus, output, tag_args)
    wall_plain, peak_plain, _ = run_dymn_tag(args.corpus, args.corpus.parent / "dymn-bench-plain.jsonl", tag_args, GLIBC_DEFAULTS)

    start = time.perf_counter()
    base_scores, base_stages = baseline(paths, args.hop)
    wall_base = time.perf_counter() - start
    decode_s = decode_only(paths)

    records = {r["path"]: r for r in map(json.loads, output.read_text().splitlines()) if "path" in r}  # (not the header)
    diffs = np.array(
        [
            max(abs(label["score"] - float(base_scores[path][label["index"]])) for label in record["labels"])
            for path, record in records.items()
        ]
    )
    run_s = summary_seconds(summary)  # its run, torch's import and model load included
    print(f"\n{'':28s}{'wall s':>9s}{'audio s / s':>14s}")
    print(f"{'(a) baseline (authors)':28s}{wall_base:9.1f}{audio_s / wall_base:14.0f}")
    print(f"{'(b) dymn-tag':28s}{wall_tag:9.1f}{audio_s / wall_tag:14.0f}")
    print(f"{'(b) glibc malloc defaults':28s}{wall_plain:9.1f}{audio_s / wall_plain:14.0f}")
    print(f"ratio (b)/(a): {wall_base / wall_tag:.2f}x")
    if args.graph is not None:
        graph_out = args.corpus.parent / "dymn-bench-onnx.jsonl"
        wall_onnx, peak_onnx, _ = run_dymn_tag(args.corpus, graph_out, [*tag_args, "--window", "10"], weights=args.graph)
        print(f"{'(c) dymn-tag, ONNX graph':28s}{wall_onnx:9.1f}{audio_s / wall_onnx:14.0f}   peak RSS {peak_onnx:.0f} MiB")
        print(f"ratio (c)/(a): {wall_base / wall_onnx:.2f}x, (c)/(b): {wall_tag / wall_onnx:.2f}x")
    print(
        f"  without dymn-tag's process start and exit ({wall_tag - run_s:.1f} s; the baseline's are not "
        f"timed either, nor is its import of torch): {wall_base / run_s:.2f}x"
    )
    print("\nbaseline stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in base_stages.items()))
    print(
        f"dymn-tag's own summary (time from the start of its run; model load includes importing torch): "
        f"{summary.removeprefix('dymn-tag: ')}"
    )
    print(f"decode + resample alone, streamed, one process: {decode_s:.1f} s ({audio_s / decode_s:.0f}x realtime)")
    print(f"dymn-tag peak RSS (largest process): {peak_tag:.0f} MiB ({peak_plain:.0f} MiB with glibc malloc defaults)")
    print(
        f"scores, dymn-tag against the baseline, largest difference per file over {len(diffs)} files: "
        f"median {np.median(diffs):.1e}, {np.sum(diffs > 1e-3)} files above 1e-3, largest {diffs.max():.1e} "
        "(float32 rounding that the random weights amplify; see above)"
    )
    if args.long_hours:
        long_files(args.corpus.parent / "dymn-bench-long", args.long_hours)


if __name__ == "__main__":
    main()
