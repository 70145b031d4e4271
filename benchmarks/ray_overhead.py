"""What running through Ray costs on one machine: the single-machine engine and `RayTagger` on the
same small folder, measured in one run, the figures printed at the end.

    python benchmarks/ray_overhead.py                      # 24 files of 10 s, the golden dymn04, 1 thread
    python benchmarks/ray_overhead.py --files 96 --seconds 30 --threads 4 --cpus 16 --actors 3

Both sides get the same torch threads (`--threads`: the single-machine process, and each Ray actor,
which reserves that many CPUs), so the difference is the pipeline, not the thread count. Every
figure is the best of `--repeats` runs (on a shared machine other processes only ever add time).

  single machine   Tagger.tag_many over the folder, decoding in process (-j 0) and with decode worker
                   processes (as `dymn-tag` picks them); the model load is left out (same for both).
  ray start        ray.init of a local instance (--cpus): paid once by `dymn-tag --ray local`.
  ray, 1 file      a whole Ray Data pipeline for one file: the fixed cost of every --ray run (actor
                   start, the model through the object store, the streaming executor).
  ray, folder      the same folder as the single machine.
  marginal         (files - 1) / (t_folder - t_1file): the rate once the pipeline runs.

The scores are not compared here: tests/test_distributed.py does that (within 1e-6). The golden
checkpoint has random weights, whose logits blow up on some inputs, so the order of float32 sums
(which windows share a batch) shows in its scores; it is used here for its speed only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent


def make_folder(root: Path, *, files: int, seconds: float, rate: int = 32_000) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for n in range(files):
        t = np.arange(int(seconds * rate)) / rate
        x = 0.3 * np.sin(2 * np.pi * (200 + 40 * n) * t) + 0.05 * rng.standard_normal(len(t))
        path = root / f"clip{n:03d}.wav"
        soundfile.write(path, x.astype(np.float32), rate)
        paths.append(str(path))
    return paths


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--weights", default=str(ROOT / "tests" / "golden" / "dymn04_seed0.pt"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads: single machine, and each actor")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray instance")
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import ray
    import torch

    from dymn_cli.inference.distributed import RayOptions
    from dymn_cli.ray_tagger import RayTagger
    from dymn_cli.run.decoding import worker_count
    from dymn_cli.run.inputs import Input
    from dymn_cli.tagger import Tagger

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), files=args.files, seconds=args.seconds)
        audio = args.files * args.seconds
        workers = worker_count(None, [Input(str(p)) for p in paths], decode_first=False)

        tagger = Tagger(weights=args.weights, device="cpu", batch_size=args.batch_size)
        list(tagger.tag_many(paths[:2]))  # warm-up
        single = {
            0: best_of(args.repeats, lambda: list(tagger.tag_many(paths, workers=0))),
            workers: best_of(args.repeats, lambda: list(tagger.tag_many(paths, workers=workers))),
        }

        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
        t_start = time.perf_counter() - start
        options = RayOptions(actors=args.actors, actor_cpus=args.threads)
        start = time.perf_counter()
        ray_tagger = RayTagger(weights=args.weights, device="cpu", batch_size=args.batch_size, ray=options)
        t_setup = time.perf_counter() - start
        t_one = best_of(args.repeats, lambda: list(ray_tagger.tag_many(paths[:1])))
        t_ray = best_of(args.repeats, lambda: list(ray_tagger.tag_many(paths)))
        threads_remote = ray.remote(num_cpus=args.threads)(lambda: __import__("torch").get_num_threads())
        actor_threads = ray.get(threads_remote.remote())
        ray.shutdown()

    t_single = min(single.values())
    print(
        f"folder: {args.files} files x {args.seconds:g} s = {audio:g} s of audio; {Path(args.weights).name}; batch "
        f"{args.batch_size}; {os.cpu_count()} CPUs (load average {load_before:.1f}); torch {torch.__version__}, "
        f"ray {ray.__version__}; best of {args.repeats}"
    )
    for n, seconds in single.items():
        print(
            f"single machine : {seconds:7.2f} s  {args.files / seconds:7.2f} files/s  {audio / seconds:7.1f} x real time"
            f"  (-j {n}, {args.threads} torch thread(s))"
        )
    print(f"ray start      : {t_start:7.2f} s  (local instance, {args.cpus} CPUs); RayTagger setup {t_setup:.2f} s")
    print(f"ray, 1 file    : {t_one:7.2f} s  (the fixed cost of a pipeline)")
    print(
        f"ray, folder    : {t_ray:7.2f} s  {args.files / t_ray:7.2f} files/s  {audio / t_ray:7.1f} x real time"
        f"  ({args.actors} actor(s), {actor_threads} torch thread(s) each)"
    )
    marginal = (args.files - 1) / (t_ray - t_one) if t_ray > t_one else float("inf")
    print(f"ray, marginal  : {marginal:7.2f} files/s  {marginal * args.seconds:7.1f} x real time (fixed cost left out)")
    print(
        f"overhead       : {t_ray - t_single:+.2f} s per run ({t_ray / t_single:.1f}x the best single machine); "
        f"{t_start + t_setup + t_ray - t_single:+.2f} s with starting Ray and shipping the model"
    )


if __name__ == "__main__":
    main()
