"""Which inputs a run tags: paths, folder trees, file lists and stdin, in a stable order."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dymn_cli.audio.decode import AUDIO_EXTENSIONS
from dymn_cli.errors import UsageError
from dymn_cli.audio.uris import expand_uri, is_uri

STDIN = "-"


@dataclass(frozen=True)
class Input:
    """One thing to tag: a file path, or `-` for audio on standard input."""

    path: str

    @property
    def is_stdin(self) -> bool:
        return self.path == STDIN


@dataclass
class InputProblem:
    path: str
    reason: str


def walk_audio_files(folder: str, *, recursive: bool = True) -> Iterator[str]:
    """Audio files under `folder` by extension, sorted; follows folder links but never loops."""
    seen: set[tuple[int, int]] = set()

    def visit(directory: str) -> Iterator[str]:
        try:
            info = os.stat(directory)
        except OSError:
            return
        key = (info.st_dev, info.st_ino)
        if key in seen:  # a link back to a folder already walked: a loop
            return
        seen.add(key)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as error:  # not lost without a word: one line on stderr
            logging.getLogger("dymn_cli").warning(
                "%s: cannot list this folder (%s); its files are left out", directory, error.strerror or error
            )
            return
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:  # e.g. a link loop: taken as a file, which then fails with the reason
                is_dir = False
            if is_dir:
                subfolders.append(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in AUDIO_EXTENSIONS:
                yield entry.path
        if recursive:
            for sub in subfolders:
                yield from visit(sub)

    yield from visit(folder)


def expand_inputs(
    paths: Iterable[str], *, recursive: bool = True, problems: list[InputProblem] | None = None
) -> Iterator[Input]:
    """Files as given, folders walked, `-` for stdin; each path once (the first time it is named).

    A path that does not exist is recorded in `problems` when that list is given (paths a user typed),
    else passed on as an input that will fail with its reason (paths from a file list).
    """
    seen: set[str] = set()
    for path in paths:
        if path == STDIN:
            candidates: Iterable[str] = [STDIN]
        elif is_uri(path):  # s3://bucket/audio and the like, listed through pyarrow (see remote.py)
            candidates = expand_uri(path, recursive=recursive, problems=problems)
        elif os.path.isdir(path):
            candidates = walk_audio_files(path, recursive=recursive)
        elif os.path.lexists(path) or problems is None:
            candidates = [path]
        else:
            problems.append(InputProblem(path, "no such file or folder"))
            continue
        found = False
        for candidate in candidates:
            found = True
            key = candidate if candidate == STDIN or is_uri(candidate) else os.path.abspath(candidate)
            if key in seen:
                continue
            seen.add(key)
            yield Input(candidate)
        if not found and problems is not None and os.path.isdir(path):
            walked = "in this folder tree" if recursive else "in this folder (--no-recursive)"
            problems.append(InputProblem(path, f"no audio file found {walked}"))


def audio_seconds(item: Input) -> float | None:
    """An input's duration from its header (None: standard input, or a header that cannot be read)."""
    from dymn_cli.audio.decode import audio_info
    from dymn_cli.errors import DymnError

    if item.is_stdin:
        return None
    try:
        return audio_info(item.path).duration_seconds
    except (DymnError, OSError, ValueError):
        return None


def read_file_list(source: str) -> Iterator[str]:
    """Paths one a line from a file or `-` (stdin); blank lines are ignored."""
    if source == STDIN:
        stream: Iterable[str] = sys.stdin
    else:
        try:
            stream = Path(source).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise UsageError(f"{source}: cannot read file list: {error.strerror or error}") from error
    for line in stream:
        line = line.rstrip("\r\n")
        if line.strip():
            yield line
