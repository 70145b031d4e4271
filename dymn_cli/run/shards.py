"""Splitting a labelling run across independent jobs (`--shard I/N`).

`--shard I/N` keeps the inputs whose path hashes to I (a stable hash: the same in every process, on
every machine, whatever the other inputs are), so N jobs given the same inputs cover each input
exactly once, with no coordination (a SLURM array, a Kubernetes indexed job, N laptops). Their
outputs, files or part files (`writers.parts`), are joined by `dymn-tag merge` (`writers.merge`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dymn_cli.errors import UsageError

DEFAULT_PART_SIZE = 1000
"""Inputs per part file (`--output-dir`) unless `--part-size` says otherwise."""


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, path: str) -> bool:
        return shard_of(path, self.count) == self.index


def parse_shard(text: str) -> Shard:
    """`"3/10"` -> `Shard(3, 10)`; shards are numbered from 0, as in `sbatch --array=0-9`."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if match is None:
        raise UsageError(f"--shard takes I/N (shard I of N, counted from 0), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise UsageError(f"--shard {text}: N must be at least 1")
    if index >= count:
        hint = f" (with SLURM, use --array=0-{count - 1})" if index == count else ""
        raise UsageError(f"--shard {text}: I counts from 0 and must be below N{hint}")
    return Shard(index, count)


def shard_of(path: str, count: int) -> int:
    """Which of `count` shards an input belongs to: a hash of its path as written in the outputs."""
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def select_shard(inputs: Sequence[Any], shard: Shard) -> list[Any]:
    """The inputs (`inputs.Input`s) of one shard, in their order."""
    if any(getattr(item, "is_stdin", False) for item in inputs):
        raise UsageError("--shard splits named inputs; standard input (-) cannot be shared out")
    return [item for item in inputs if shard.holds(item.path)]


def part_stem(shard: Shard | None) -> str:
    """Part files are `part-00000.ext`, or `part-I-of-N-00000.ext` under `--shard I/N`."""
    return "part" if shard is None else f"part-{shard.index}-of-{shard.count}"
