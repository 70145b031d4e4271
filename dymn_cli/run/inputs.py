"""Which inputs a run tags: paths, folder trees, file lists and stdin, in a stable order."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from dymn_cli.audio.paths import AUDIO_EXTENSIONS, STDIN
from dymn_cli.audio.uris import is_uri, list_uri, one_line
from dymn_cli.errors import UsageError
from dymn_cli.text_lists import read_lines


@dataclass(frozen=True)
class Input:
    """One thing to tag: a file path, or `-` for audio on standard input."""

    path: str
    walked: bool = False  # found by a folder walk, as a regular file

    @property
    def is_stdin(self) -> bool:
        return self.path == STDIN


@dataclass
class InputProblem:
    path: str
    reason: str


MAX_LISTED_PATH = 64 * 1024
"""Bytes in one line of a file list at most (Linux paths are at most 4096): a longer line means the
"list" is not one (--files-from /dev/zero), and reading stops there instead of filling memory."""

SPECIAL_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device"}


def walk_audio_files(folder: str, *, recursive: bool = True) -> Iterator[str]:
    """Regular audio files under `folder` by extension, sorted; follows folder links but never loops.

    FIFOs, sockets and devices named like audio are never opened (a FIFO would block the run): the
    walk leaves them out and says so in one warning line at its end.
    """
    seen: set[tuple[int, int]] = set()
    special: list[str] = []

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
                kind = _special_kind(entry)
                if kind is None:
                    yield entry.path
                else:
                    special.append(f"{entry.path} ({kind})")
        if recursive:
            for sub in subfolders:
                yield from visit(sub)

    yield from visit(folder)
    if special:
        shown = ", ".join(special[:5]) + (f" and {len(special) - 5} more" if len(special) > 5 else "")
        logging.getLogger("dymn_cli").warning(
            "%s: left out %d special file%s (not regular files, never opened): %s",
            folder,
            len(special),
            "s" if len(special) > 1 else "",
            shown,
        )


def _special_kind(entry: os.DirEntry) -> str | None:
    """What a folder entry is when it is a FIFO, socket or device (links followed), else None (a
    regular file, or one that cannot be looked at: it then fails with its reason when tagged)."""
    try:
        mode = entry.stat().st_mode
    except OSError:
        return None
    return SPECIAL_KINDS.get(stat.S_IFMT(mode))


def expand_inputs(
    paths: Iterable[str],
    *,
    recursive: bool = True,
    problems: list[InputProblem] | None = None,
    empty_folders: list[InputProblem] | None = None,
) -> Iterator[Input]:
    """Files as given, folders walked, `-` for stdin; each path once (the first time it is named).

    A path that does not exist is recorded in `problems` when that list is given (paths a user typed),
    else passed on as an input that will fail with its reason (paths from a file list). A folder without
    an audio file is recorded in `problems`, or in `empty_folders` when only that list is given.
    """
    seen: set[str] = set()
    for path in paths:
        walked = False
        if path == STDIN:
            candidates: Iterable[str] = [STDIN]
        elif is_uri(path):  # s3://bucket/audio and the like, listed through pyarrow (see audio/uris.py)
            candidates = _expand_uri(path, recursive=recursive, problems=problems)
        elif os.path.isdir(path):
            candidates = walk_audio_files(path, recursive=recursive)
            walked = True
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
            yield Input(candidate, walked=walked)
        empty = problems if problems is not None else empty_folders
        if not found and empty is not None and os.path.isdir(path):
            walked = "in this folder tree" if recursive else "in this folder (--no-recursive)"
            empty.append(InputProblem(path, f"no audio file found {walked}"))


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


def _expand_uri(uri: str, *, recursive: bool, problems: list[InputProblem] | None) -> list[str]:
    """`list_uri` for `expand_inputs`: a URI that names nothing is a problem when `problems`
    is given (typed by the user), else passed on to fail as an input (from a file list)."""
    try:
        found = list_uri(uri, recursive=recursive)
    except (OSError, ValueError) as error:
        if problems is None:
            return [uri]
        problems.append(InputProblem(uri, f"cannot list: {one_line(error)}"))
        return []
    if found is None:
        if problems is None:
            return [uri]
        problems.append(InputProblem(uri, "no such file or folder"))
        return []
    return found


def read_file_list(source: str) -> Iterator[str]:
    """Paths one a line from a file or `-` (stdin); blank lines are ignored.

    Read by the one bounded reader of lists (`dymn_cli.text_lists`): memory bounded by `MAX_LISTED_PATH`
    a line, whatever the file is (a FIFO, a device, an endless pipe); a name that is not UTF-8 comes back
    as `os.fsdecode` gives it, so that it names the same file. A line too long for a path, or holding a
    NUL byte, stops the run with a usage error: the file is not a list of paths.
    """
    for _, line in read_lines(source, what="file list", max_line=MAX_LISTED_PATH):
        if line.strip():
            yield line


def collect_inputs(paths: Sequence[str], *, files_from: str | None, recursive: bool, problems: list[InputProblem]) -> list[Input]:
    """Inputs named on the command line and in a file list, each once, in the order given; folders
    without audio go to `problems` (a usage error here when nothing else is left)."""
    if files_from == STDIN and STDIN in paths:
        raise UsageError("standard input cannot carry both audio (-) and a file list (--files-from -)")
    named = list(paths)
    # A path that does not exist is an input that fails ("no such file or folder"), whichever way it
    # was named: counted as failed, recorded as such, exit 1 (unless no input exists at all).
    # A folder without audio is a problem (exit 2), reported before the model loads when nothing else is left.
    inputs = list(expand_inputs(named, recursive=recursive, problems=None, empty_folders=problems))
    if files_from is not None:
        listed = expand_inputs(read_file_list(files_from), recursive=recursive, problems=None)
        seen = {i.path for i in inputs}
        inputs += [i for i in listed if i.path not in seen]
    if not named and files_from is None:
        raise UsageError("no input: name files or folders, - for standard input, or --files-from")
    if not inputs and files_from is not None and not named:
        raise UsageError(f"{'standard input' if files_from == STDIN else files_from}: the file list names no input")
    if not inputs and problems and files_from is None:
        raise UsageError("; ".join(f"{p.path}: {p.reason}" for p in problems))
    return inputs


def missing_paths(inputs: list[Input]) -> set[str]:
    """The inputs that do not exist: each is one failed input ("no such file or folder"), whichever way
    it was named (command line, folder walk, file list); a run where no input exists at all is a usage
    error, before the model loads."""
    missing = {i.path for i in inputs if not i.is_stdin and not is_uri(i.path) and not os.path.lexists(i.path)}
    if inputs and len(missing) == len(inputs):
        shown = [i.path for i in inputs[:5]]
        raise UsageError("; ".join(f"{path}: no such file or folder" for path in shown) + (" ..." if len(inputs) > 5 else ""))
    return missing
