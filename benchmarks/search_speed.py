"""Queries per second of `dymn-tag search` over an index of a million windows, and the memory it needs.

    python benchmarks/search_speed.py                    # 1,000,000 windows of 960 (dymn10's width)
    python benchmarks/search_speed.py --rows 200000 --dim 384 --threads 1

An archive laid out as `dymn-tag --embeddings --timeline` writes it (100,000 files of 10 windows,
random float32 embeddings: search does the same arithmetic whatever the values) is written by a child
process, so that this process's peak memory is the search's own. Then, in this process:

  load        `load_index`: the window embeddings read into memory (`--memory-map`: mapped from the
              archive instead), their norms computed once, paths and times read;
  memory      resident memory after the load over that before it, and the peak while searching
              (ru_maxrss) over that before the load (with --memory-map, mapped pages count as resident
              once read: they are the page cache's, shared and given back under pressure);
  queries/s   `search` for batches of 1, 16 and 64 query embeddings (the best of `--repeats`): one
              query is a matrix-vector product over the index, a batch one matrix product per block.

torch's and numpy's BLAS use `--threads` (OMP_NUM_THREADS etc., set before numpy is imported).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="window embeddings in the index")
    parser.add_argument("--dim", type=int, default=960, help="embedding width (dymn10: 960, dymn04 and mn04: 384)")
    parser.add_argument("--batches", default="1,16,64", help="query batch sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: the library's)")
    parser.add_argument("--memory-map", action="store_true", help="load_index(memory_map=True)")
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)  # (the child that writes the archive)
    return parser.parse_args()


def make_archive(path: Path, rows: int, dim: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    per_file = 10
    files = -(-rows // per_file)
    embeddings = np.empty((rows, dim), dtype=np.float32)
    for begin in range(0, rows, 100_000):
        embeddings[begin : begin + 100_000] = rng.standard_normal((min(100_000, rows - begin), dim), dtype=np.float32)
    index = np.arange(rows) // per_file
    starts = (np.arange(rows) % per_file) * 10.0
    np.savez(
        path,
        paths=np.array([f"/data/recordings/{n:06d}.flac" for n in range(files)]),
        clip_embeddings=np.zeros((files, dim), dtype=np.float32),
        window_embeddings=embeddings,
        window_path_index=index.astype(np.int64),
        window_starts=starts,
        window_ends=starts + 10.0,
        window_seconds=np.array(10.0),
        hop_seconds=np.array(10.0),
    )


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    args = parse()
    if args.threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    if args.make is not None:
        make_archive(args.make, args.rows, args.dim)
        return
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "index.npz"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--make", str(archive), "--rows", str(args.rows), "--dim", str(args.dim)],
            check=True,
            env=os.environ,
        )
        made = time.perf_counter() - started
        import numpy as np

        from dymn_cli.transfer.similarity import load_index, search

        before = rss_mib()
        started = time.perf_counter()
        index = load_index(archive, memory_map=args.memory_map)
        load = time.perf_counter() - started
        loaded = rss_mib()
        size = archive.stat().st_size / 2**20
        rng = np.random.default_rng(1)
        rates = {}
        for batch in (int(b) for b in args.batches.split(",")):
            queries = rng.standard_normal((batch, args.dim), dtype=np.float32)
            best = float("inf")
            for _ in range(args.repeats):
                started = time.perf_counter()
                hits = search(index, queries, top=10)
                best = min(best, time.perf_counter() - started)
            assert len(hits) == batch and len(hits[0]) == 10
            rates[batch] = batch / best
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"index: {args.rows:,} windows x {args.dim} float32 ({size:,.0f} MiB archive, written in {made:.1f} s); "
        f"BLAS threads: {args.threads or 'default'}; {'memory-mapped' if args.memory_map else 'in memory'}"
    )
    print(
        f"load_index: {load:.1f} s; resident memory +{loaded - before:,.0f} MiB after the load, "
        f"peak while searching +{peak - before:,.0f} MiB over the start"
    )
    for batch, rate in rates.items():
        print(f"batch of {batch:>4} queries: {rate:10,.1f} queries/s ({1000 * batch / rate:8.1f} ms a batch)")


if __name__ == "__main__":
    main()
