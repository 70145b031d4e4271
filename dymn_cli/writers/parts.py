"""Part files (`--output-dir DIR`): the results as numbered files (`part-00000.csv`, ...), each
finished as soon as it holds `--part-size` inputs, so a run that is killed keeps its finished parts
and `--resume` goes on from them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from dymn_cli.errors import OutputError, UsageError
from dymn_cli.writers.base import OutputOptions, Writer
from dymn_cli.writers.registry import MERGEABLE_FORMATS, WRITERS
from dymn_cli.writers.targets import check_folder


class PartWriter(Writer):
    """A `Writer` over a folder: results go to numbered part files of another writer's format, each
    closed (made whole) once it holds `part_size` inputs. Make one with `part_writer(...)`.

    `read_existing` reads every part of the format in the folder (those of other shards too), so
    `--resume` skips whatever any earlier run finished; `write_existing` has nothing to do, the
    earlier parts stay as they are.
    """

    base: ClassVar[type[Writer]]
    part_size: ClassVar[int]
    stem: ClassVar[str]

    def __init__(self, target: Path, *, options: OutputOptions, header: dict[str, Any], append: bool = False) -> None:
        super().__init__(Path(target), options=options, header=header)
        self.target = Path(target)
        try:
            self.target.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{self.target}: cannot make this folder: {error.strerror or error}") from None
        self._number = 1 + max(own_part_numbers(self.target, stem=self.stem, extension=self.extension), default=-1)
        self._current: Any = None
        self._count = 0
        self.written: list[Path] = []

    @classmethod
    def validate(cls, *, options: OutputOptions, target: Path | None, inputs: Sequence[Any]) -> None:
        cls.base.validate(options=options, target=None, inputs=inputs)

    @classmethod
    def carries_over(cls) -> bool:
        return False  # the earlier parts stay as they are

    @classmethod
    def check_resumable(cls, target: Path, *, options: OutputOptions, settings: dict[str, Any], model: str | None = None) -> None:
        for part in part_files(Path(target), extension=cls.extension):
            try:
                cls.base.check_resumable(part, options=options, settings=settings, model=model)
            except ValueError as error:
                raise ValueError(f"{part.name}: {error}") from None

    @classmethod
    def read_header(cls, target: Path) -> dict[str, Any] | None:
        parts = part_files(Path(target), extension=cls.extension)
        return cls.base.read_header(parts[0]) if parts else None

    @classmethod
    def iter_records(cls, target: Path, *, payloads: bool = True) -> Iterator[tuple[str, Any]]:
        for part in part_files(Path(target), extension=cls.extension):
            yield from cls.base.iter_records(part, payloads=payloads)

    def discard(self) -> None:
        if self._current is not None:
            current, self._current = self._current, None
            current.discard()

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


def part_writer(format: str | None, folder: Path, *, part_size: int, stem: str = "part", resume: bool) -> type[PartWriter]:
    """The writer type for `--output-dir FOLDER` in `format` (default JSONL). Parts are named
    `STEM-00000.ext` (the run of one shard of an array gives its own stem, so that the jobs can share
    one folder). Without `resume`, a folder that already holds this run's parts is refused."""
    format = format or "jsonl"
    if format not in MERGEABLE_FORMATS:
        raise UsageError(f"--output-dir writes part files in {', '.join(MERGEABLE_FORMATS)}: not --format {format}")
    if part_size < 1:
        raise UsageError(f"--part-size must be at least 1, got {part_size}")
    check_folder(folder, option="--output-dir")
    base = WRITERS[format]
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
