"""Where outputs go: every target checked before a run does any work (how each is written: `output_file`
for whole files, `record_log` for JSON Lines, `settings_record` for the record beside a CSV).

Two kinds of target:

- a **file** (a regular file, or a name that does not exist yet) is written to a temporary file beside
  it and renamed over it when complete (`OutputFile.commit`); a symlink is written through, to the file
  it points to, and stays a link. A write error removes the temporary file: the earlier output stays.
- a **stream** (a pipe, a FIFO, a terminal, a character device such as /dev/null, or /dev/stdout and
  /dev/fd/N, which write to this process's own descriptor) is written in place, never renamed over.

Every `OSError` on the way becomes one `OutputError` naming the target; a reader that went away
(`EPIPE`) becomes `OutputClosed`, which stops a run without a word.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dymn_cli.errors import UsageError

__all__ = [
    "FILE",
    "STREAM",
    "Target",
    "check_folder",
    "check_targets",
    "describe_error",
    "is_terminal",
    "refuse_overwriting",
    "resolve_target",
]

FILE, STREAM = "file", "stream"


@dataclass(frozen=True)
class Target:
    """An output as named (`path`; None: standard output) and where its bytes go."""

    path: Path | None
    kind: str  # FILE or STREAM
    real: Path | None = None  # FILE: the file written (a symlink's target); STREAM: the path opened
    descriptor: int | None = None  # STREAM to one of this process's descriptors (stdout, /dev/fd/N)
    exists: bool = False

    @property
    def name(self) -> str:
        return "standard output" if self.path is None else str(self.path)

    @property
    def is_file(self) -> bool:
        return self.kind == FILE


def describe_error(error: OSError) -> str:
    return error.strerror or str(error)


def _own_descriptor(path: Path) -> int | None:
    """N when `path` names this process's descriptor N (/dev/stdout, /dev/fd/N, /proc/self/fd/N),
    found by following links one at a time (following the last one would name the file behind it)."""
    current = os.path.abspath(path)
    own = re.compile(rf"/proc/(?:self|thread-self|{os.getpid()})/fd/(\d+)")
    for _ in range(40):
        parent, name = os.path.split(current)
        current = os.path.join(os.path.realpath(parent), name)
        found = own.fullmatch(current)
        if found:
            return int(found.group(1))
        if not os.path.islink(current):
            return None
        current = os.path.normpath(os.path.join(parent, os.readlink(current)))
    return None


def resolve_target(path: Path | None) -> Target:
    """What kind of target `path` is, or a `UsageError` saying why it cannot be written (before any work)."""
    if path is None:
        try:
            os.fstat(1)
        except OSError:
            raise UsageError("standard output is closed: name an output file with -o") from None
        return Target(None, STREAM, descriptor=1, exists=True)
    descriptor = _own_descriptor(path)
    if descriptor is not None:
        try:
            os.fstat(descriptor)
        except OSError:
            raise UsageError(f"{path}: descriptor {descriptor} is not open") from None
        return Target(path, STREAM, real=path, descriptor=descriptor, exists=True)
    try:
        info = os.stat(path)  # (follows links)
    except FileNotFoundError:
        info = None
    except OSError as error:
        if error.errno == errno.ENOTDIR:
            raise UsageError(f"{path}: cannot write here: a part of its folder path is a file") from None
        raise UsageError(f"{path}: cannot write here: {describe_error(error)}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{path}: is a folder: name a file to write")
    if info is not None and (stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode)):
        if not os.access(path, os.W_OK):
            raise UsageError(f"{path}: cannot write here: permission denied")
        return Target(path, STREAM, real=path, exists=True)
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{path}: not a regular file, pipe or character device: will not write to it")
    real = Path(os.path.realpath(path))  # a symlink's (possibly missing) target: written through
    folder = real.parent
    if not folder.is_dir():
        if folder.exists() or any(p.exists() and not p.is_dir() for p in folder.parents):
            raise UsageError(f"{path}: cannot write here: a part of its folder path is a file")
        raise UsageError(f"{path}: cannot write here: no such folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only_file_system(folder) else "permission denied"
        raise UsageError(
            f"{path}: cannot write in its folder {folder} ({reason}): the output is made beside it and renamed into place"
        )
    return Target(path, FILE, real=real, exists=info is not None)


def _read_only_file_system(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def check_targets(named: Sequence[tuple[str, Path | None]], *, inputs: Iterable[str] = ()) -> dict[str, Target]:
    """Check every output of a run before it does any work: each one can be written (see
    `resolve_target`), no two name the same file, and none is one of the inputs (also through
    links or hard links). `named` pairs an option (`-o`, `--embeddings`) with its path."""
    resolved: dict[str, Target] = {}
    seen: dict[object, str] = {}
    for option, path in named:
        if path is None:
            continue
        target = resolve_target(path)
        resolved[option] = target
        key: object = _identity(path) if target.exists else None
        if key is None or target.descriptor is not None:
            key = ("fd", target.descriptor) if target.descriptor is not None else str(target.real or path)
        if target.kind == STREAM and target.descriptor is None and not _is_fifo(path):
            continue  # /dev/null and other devices may take several outputs
        if key in seen:
            raise UsageError(f"{path}: named by both {seen[key]} and {option}: give each output its own file")
        seen[key] = option
    existing = [(option, t.real) for option, t in resolved.items() if t.is_file and t.exists and t.real is not None]
    if (clash := _first_read(existing, inputs)) is not None:
        option, path, item = clash
        raise UsageError(f"{resolved[option].path}: this {option} target is one of the inputs ({item}): it would be overwritten")
    return resolved


def _first_read(
    outputs: Iterable[tuple[str, Path | None]], read: Iterable[str | os.PathLike[str] | None]
) -> tuple[str, Path, str | os.PathLike[str]] | None:
    """The first output (option, path, the file read) that is one of the files `read` (by device and
    inode: also through links or hard links), or None."""
    by_identity = {_identity(path): (option, path) for option, path in outputs if path is not None}
    by_identity.pop(None, None)
    if not by_identity:
        return None
    for item in read:
        if item is not None and os.fspath(item) != "-" and (found := by_identity.get(_identity(Path(item)))) is not None:
            return (*found, item)
    return None


def refuse_overwriting(outputs: Iterable[tuple[str, Path | None]], read: Iterable[str | os.PathLike[str] | None]) -> None:
    """No output (option, path) is a file the run reads besides its inputs: the model's checkpoints or
    graph, a head, a list of inputs, thresholds (also through links or hard links). Before any work."""
    if (clash := _first_read(outputs, read)) is not None:
        option, path, found = clash
        raise UsageError(f"{path}: this {option} target is a file the run reads ({found}): it would be overwritten")


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def is_terminal(target: Target) -> bool:
    """Whether a STREAM target is this process's terminal (the table writer's colours and width follow it)."""
    try:
        return os.isatty(target.descriptor) if target.descriptor is not None else False
    except OSError:
        return False


def check_folder(path: Path, *, option: str) -> None:
    """A folder target (`--output-dir`, `--plot DIR`): an existing folder, or one that can be made."""
    # os.path.exists: Path.exists raises PermissionError under a folder that cannot be searched (Python 3.11).
    if os.path.exists(path):
        if not path.is_dir():
            raise UsageError(f"{option} {path}: not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            reason = "read-only file system" if _read_only_file_system(path) else "permission denied"
            raise UsageError(f"{option} {path}: cannot write in this folder ({reason})")
        return
    above = Path(os.path.abspath(path)).parent
    while not os.path.exists(above):
        above = above.parent
    if not above.is_dir():
        raise UsageError(f"{option} {path}: cannot make this folder: a part of its path is a file")
    if not os.access(above, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot make this folder in {above} (permission denied)")
