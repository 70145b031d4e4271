"""Splitting a labelling run across independent jobs, and joining their outputs again.

- `--shard I/N` keeps the inputs whose path hashes to I (a stable hash: the same in every process,
  on every machine, whatever the other inputs are), so N jobs given the same inputs cover each input
  exactly once, with no coordination (a SLURM array, a Kubernetes indexed job, N laptops).
- `--output-dir DIR` writes the results as numbered part files (`part-00000.csv`, ...), each one
  finished as soon as it holds `--part-size` inputs, so a run that is killed keeps its finished parts
  and `--resume` goes on from them.
- `dymn-tag merge OUTPUTS... -o FILE` joins outputs of one format (files or folders of parts) into one
  file, in the order a folder walk gives (per folder: files by name, then subfolders by name), which
  is the order `dymn-tag FOLDER` writes; so merging the shards of a folder gives the single-machine
  output of that folder, byte for byte for CSV, JSON and JSONL.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import UsageError
from .names import csv_writer, json_text

log = logging.getLogger("dymn_cli")

DEFAULT_PART_SIZE = 1000
PART_FORMATS = ("csv", "json", "jsonl", "parquet")


# --------------------------------------------------------------------------- order


def walk_order_key(path: str) -> tuple[tuple[int, str], ...]:
    """Sort key that orders paths as a sorted folder walk visits them: in each folder, its files by
    name first, then its subfolders by name (see `inputs.walk_audio_files`). URIs sort the same way."""
    parts = path.replace(os.sep, "/").split("/") if os.sep != "/" else path.split("/")
    return tuple((1, part) for part in parts[:-1]) + ((0, parts[-1]),)


# --------------------------------------------------------------------------- shards


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


# --------------------------------------------------------------------------- part files


class PartWriter:
    """A `Writer` over a folder: results go to numbered part files of another writer's format, each
    closed (made whole) once it holds `part_size` inputs. Make one with `part_writer(...)`.

    `read_existing` reads every part of the format in the folder (those of other shards too), so
    `--resume` skips whatever any earlier run finished; `write_existing` has nothing to do, the
    earlier parts stay as they are.
    """

    base: ClassVar[type]
    part_size: ClassVar[int]
    stem: ClassVar[str]
    name: ClassVar[str]
    extension: ClassVar[str]
    resumable: ClassVar[bool] = True
    per_input: ClassVar[bool] = False

    def __init__(self, target: Path, *, options: Any, header: dict[str, Any]) -> None:
        self.target = Path(target)
        self.options = options
        self.header = header
        self.target.mkdir(parents=True, exist_ok=True)
        self._number = 1 + max(own_part_numbers(self.target, stem=self.stem, extension=self.extension), default=-1)
        self._current: Any = None
        self._count = 0
        self.written: list[Path] = []

    @classmethod
    def validate(cls, *, options: Any, target: Path | None, inputs: Sequence[Any]) -> None:
        validate = getattr(cls.base, "validate", None)
        if validate is not None:
            validate(options=options, target=None, inputs=inputs)

    @classmethod
    def check_resumable(cls, target: Path, *, options: Any, settings: dict[str, Any]) -> None:
        for part in part_files(Path(target), extension=cls.extension):
            cls.base.check_resumable(part, options=options, settings=settings)

    @classmethod
    def read_existing(cls, target: Path) -> dict[str, Any]:
        records: dict[str, Any] = {}
        for part in part_files(Path(target), extension=cls.extension):
            records.update(cls.base.read_existing(part))
        return records

    def write(self, outcome: Any) -> None:
        if self._current is None:
            path = self.target / f"{self.stem}-{self._number:05d}{self.extension}"
            self._current = self.base(path, options=self.options, header=self.header)
            self.written.append(path)
            self._number += 1
        self._current.write(outcome)
        self._count += 1
        if self._count >= self.part_size:
            self._finish_part()

    def write_existing(self, path: str, payload: Any) -> None:
        pass  # recorded in an earlier part, which stays

    def close(self) -> None:
        self._finish_part()

    def _finish_part(self) -> None:
        if self._current is not None:
            current, self._current, self._count = self._current, None, 0
            current.close()


def part_writer(format: str | None, folder: Path, *, part_size: int, shard: Shard | None, resume: bool) -> type[PartWriter]:
    """The writer type for `--output-dir FOLDER` in `format` (default JSONL). Parts are named
    `part-00000.ext`, or `part-I-of-N-00000.ext` under `--shard I/N` so that the jobs of an array can
    share one folder. Without `resume`, a folder that already holds this run's parts is refused."""
    from .outputs import WRITERS

    format = format or "jsonl"
    if format not in PART_FORMATS or format not in WRITERS:
        raise UsageError(f"--output-dir writes part files in {', '.join(PART_FORMATS)}: not --format {format}")
    if part_size < 1:
        raise UsageError(f"--part-size must be at least 1, got {part_size}")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--output-dir {folder}: not a folder")
    base = WRITERS[format]
    stem = "part" if shard is None else f"part-{shard.index}-of-{shard.count}"
    if not resume and folder.is_dir() and own_part_numbers(folder, stem=stem, extension=base.extension):
        raise UsageError(f"{folder} already holds {stem}-*{base.extension} files: add --resume to go on, or use an empty folder")
    return type(  # type: ignore[return-value]
        f"{base.__name__}Parts",
        (PartWriter,),
        {"base": base, "part_size": part_size, "stem": stem, "name": base.name, "extension": base.extension},
    )


def part_files(folder: Path, *, extension: str) -> list[Path]:
    """Finished outputs of one format in a folder, by name (temporary files start with a dot)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == extension and not p.name.startswith(".") and p.is_file())


def own_part_numbers(folder: Path, *, stem: str, extension: str) -> list[int]:
    pattern = re.compile(rf"{re.escape(stem)}-(\d+){re.escape(extension)}")
    if not folder.is_dir():
        return []
    return [int(m.group(1)) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]


# --------------------------------------------------------------------------- merge


@dataclass
class MergeSummary:
    files: int = 0
    inputs: int = 0
    duplicates: list[str] = field(default_factory=list)

    def line(self, target: Path) -> str:
        again = f", {len(self.duplicates)} recorded more than once (the last result kept)" if self.duplicates else ""
        return f"merged {self.inputs} inputs from {self.files} files into {target}{again}"


def merge_outputs(sources: Sequence[str | Path], target: Path) -> MergeSummary:
    """Join outputs of one format (files, or folders of part files) into `target`, in folder-walk
    order. An input recorded in several outputs keeps its last record, except that an error record
    never replaces a result (a re-run shard may have fixed what failed before, not the other way)."""
    from .outputs import WRITERS, writer_class

    writer_type = writer_class(None, target, stdout_is_terminal=False)
    if writer_type.name not in PART_FORMATS:
        raise UsageError(f"merge writes {', '.join(PART_FORMATS)}: not {target.suffix or target.name}")
    files = _merge_sources(sources, extension=writer_type.extension)
    if any(f.resolve() == target.resolve() for f in files if target.exists()):
        raise UsageError(f"{target} is one of the outputs to merge: write the merged file elsewhere")
    summary = MergeSummary(files=len(files))
    merged: dict[str, Any] = {}
    layout: Any = None
    for path in files:
        try:
            this_layout = _layout(writer_type.name, path)
            records = writer_type.read_existing(path)
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as error:
            raise UsageError(f"{path}: cannot read it as {writer_type.name}: {error}") from error
        if layout is None:
            layout = this_layout
        elif this_layout != layout and this_layout is not None:
            raise UsageError(f"{path} was written with other settings or columns than {files[0]}: they cannot be merged")
        for key, payload in records.items():
            if key in merged:
                summary.duplicates.append(key)
                if _is_error(payload) and not _is_error(merged[key]):
                    continue
            merged[key] = payload
    summary.inputs = len(merged)
    ordered = sorted(merged, key=walk_order_key)
    _write_merged(WRITERS[writer_type.name], target, layout, [(key, merged[key]) for key in ordered])
    return summary


def _merge_sources(sources: Iterable[str | Path], *, extension: str) -> list[Path]:
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found = part_files(source, extension=extension)
            if not found:
                log.warning("%s: no %s files in this folder", source, extension)
            files += found
        elif source.is_file():
            if source.suffix.lower() != extension:
                raise UsageError(f"{source}: merge joins outputs of one format: expected {extension} files like the merged file")
            files.append(source)
        else:
            raise UsageError(f"{source}: no such file or folder")
    if not files:
        raise UsageError("nothing to merge")
    return files


def _layout(format: str, path: Path) -> Any:
    """What must agree between merged outputs: the CSV/Parquet columns, the JSON header."""
    if format == "csv":
        with open(path, encoding="utf-8", newline="") as stream:
            return tuple(next(csv.reader(stream), []))
    if format == "json":
        with open(path, encoding="utf-8") as stream:
            document = json.load(stream)
        return {k: v for k, v in document.items() if k != "files"}
    if format == "parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        return (tuple(schema.names), (schema.metadata or {}).get(b"dymn"))
    return None  # JSONL: one self-contained record a line


def _is_error(payload: Any) -> bool:
    return isinstance(payload, dict) and "error" in payload


def _write_merged(writer_type: type, target: Path, layout: Any, records: list[tuple[str, Any]]) -> None:
    from .outputs import OutputOptions, _AtomicTextFile

    if writer_type.name == "json":
        writer = writer_type(target, options=OutputOptions(), header=dict(layout or {}))
        for key, payload in records:
            writer.write_existing(key, payload)
        writer.close()
    elif writer_type.name == "parquet":
        columns, header = layout
        rows = [row for _, payload in records for row in payload]
        writer_type.write_table(target, columns=list(columns), rows=rows, header=json.loads(header) if header else {})
    else:  # CSV rows and JSONL records, as they were read (the JSONL writer would append, a merge replaces)
        atomic = _AtomicTextFile(target)
        if writer_type.name == "csv":
            rows = csv_writer(atomic.stream)
            rows.writerow(layout)
            for _, payload in records:
                rows.writerows(payload)
        else:
            for _, record in records:
                atomic.stream.write(json_text(record) + "\n")
        atomic.commit()
