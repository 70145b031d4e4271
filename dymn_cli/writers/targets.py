"""Where outputs go: every target checked before a run does any work, and written so that its real
name never holds a broken or mixed file.

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
import hashlib
import io
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dymn_cli.atomic import new_file_mode
from dymn_cli.errors import OutputClosed, OutputError, UsageError

__all__ = [
    "FILE",
    "STREAM",
    "OutputFile",
    "RecordLog",
    "Target",
    "check_targets",
    "describe_error",
    "read_settings_record",
    "resolve_target",
    "settings_record_path",
    "write_settings_record",
    "written",
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
    files = {_identity(t.real): (option, t) for option, t in resolved.items() if t.is_file and t.exists and t.real is not None}
    files.pop(None, None)
    if files:
        for item in inputs:
            found = files.get(_identity(Path(item)))
            if found is not None:
                option, target = found
                raise UsageError(f"{target.path}: this {option} target is one of the inputs ({item}): it would be overwritten")
    return resolved


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


class OutputFile:
    """An output being written: a temporary file beside a FILE target, renamed over it by `commit`;
    a STREAM target written in place. `write` takes bytes; `text=True` also takes str (UTF-8).

    Every OS error is raised as `OutputError` naming the target (`OutputClosed` for a closed pipe).
    A FILE's content is hashed as it is written (`sha256`), for the records that bind settings to it.
    """

    def __init__(self, target: Target | Path | None) -> None:
        self.target = target if isinstance(target, Target) else resolve_target(target)
        self.temp_name: str | None = None
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._done = False
        # called with the complete temporary file just before it is renamed into place (e.g. to
        # write the record of the settings that made it)
        self.on_complete: Callable[[OutputFile], None] | None = None
        try:
            if self.target.is_file:
                assert self.target.real is not None
                handle, self.temp_name = tempfile.mkstemp(
                    prefix=f".{self.target.real.name}.", suffix=".part", dir=self.target.real.parent
                )
                os.chmod(self.temp_name, new_file_mode())  # mkstemp's 0o600 would hide the output from other users
            elif self.target.descriptor is not None:
                handle = os.dup(self.target.descriptor)
            else:
                handle = os.open(self.target.real, os.O_WRONLY)  # (no O_TRUNC: a pipe or device is written, not replaced)
            self._stream: io.BufferedWriter = open(handle, "wb", closefd=True)  # type: ignore[assignment]
        except OSError as error:
            self._fail(error)

    @property
    def name(self) -> str:
        return self.target.name

    def _fail(self, error: OSError) -> None:
        if isinstance(error, BrokenPipeError) or error.errno == errno.EPIPE:
            self.discard()
            raise OutputClosed(f"{self.name}: closed by its reader") from None
        self.discard()
        raise OutputError(f"{self.name}: cannot write: {describe_error(error)}") from None

    def write(self, data: bytes | str) -> int:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        if self._done:  # (discarded after an error: nothing more goes anywhere)
            return len(data)
        try:
            self._stream.write(data)
        except OSError as error:
            self._fail(error)
        if self.target.is_file:
            self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        if self._done:
            return
        try:
            self._stream.flush()
        except OSError as error:
            self._fail(error)

    def commit(self) -> None:
        """Make the output whole under its real name (a FILE: fsync, then rename over the target)."""
        if self._done:
            return
        try:
            self._stream.flush()
            if self.target.is_file:
                os.fsync(self._stream.fileno())
            self._stream.close()
            if self.temp_name is not None:
                assert self.target.real is not None
                if self.on_complete is not None:
                    self.on_complete(self)
                _rename_into_place(self.temp_name, self.target)
                self.temp_name = None
        except OSError as error:
            self._fail(error)
        self._done = True

    def discard(self) -> None:
        """Give up this output: the target keeps what it held before (a FILE's temporary file is removed)."""
        self._done = True
        stream = getattr(self, "_stream", None)
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
        if self.temp_name is not None:
            try:
                os.unlink(self.temp_name)
            except OSError:
                pass
            self.temp_name = None

    # A small file-like face for libraries that write to a file object (pyarrow, numpy's zip files)
    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._done


def _rename_into_place(temp_name: str, target: Target) -> None:
    """Rename a complete temporary file over the target. If that fails (the target was replaced by a
    folder mid-run, say), the complete file is kept under its temporary name and the error says so."""
    assert target.real is not None
    try:
        os.replace(temp_name, target.real)
    except OSError as error:
        raise OutputError(
            f"{target.name}: cannot write: {describe_error(error)} (this run's complete output is kept in {temp_name})"
        ) from None
    _sync_folder(target.real.parent)


class RecordLog:
    """Whole records appended to a target one at a time, each flushed as it comes (JSON Lines): a run
    killed at any moment leaves whole records only (a write cut short is truncated back).

    A FILE target is started afresh, unless `append`: a temporary file beside it gets `header`, and is
    renamed over the target when the first record comes (or at `close`), so a run that ends before
    its first record leaves the earlier output as it was. If the target is deleted or replaced during
    the run, `close` puts everything written back under its name.
    """

    def __init__(self, target: Target | Path | None, *, header: bytes = b"", append: bool = False) -> None:
        self.target = target if isinstance(target, Target) else resolve_target(target)
        self._temp: str | None = None
        self._pending = header
        self._good = 0
        try:
            if not self.target.is_file:
                self._fd = (
                    os.dup(self.target.descriptor)
                    if self.target.descriptor is not None
                    else os.open(self.target.real, os.O_WRONLY)
                )
            elif append:
                self._fd = os.open(self.target.real, os.O_RDWR | os.O_APPEND)
                self._good = _cut_partial_record(self._fd)
                self._pending = b""
            else:
                assert self.target.real is not None
                self._fd, self._temp = tempfile.mkstemp(
                    prefix=f".{self.target.real.name}.", suffix=".part", dir=self.target.real.parent
                )
                os.chmod(self._temp, new_file_mode())
        except OSError as error:
            raise OutputError(f"{self.target.name}: cannot write: {describe_error(error)}") from None
        self._closed = False

    @property
    def name(self) -> str:
        return self.target.name

    def append(self, record: bytes) -> None:
        """Write one whole record (ending in a newline) and make it visible under the target's name."""
        if self._closed:
            return
        data = self._pending + record
        try:
            _write_all(self._fd, data)
        except OSError as error:
            self._cut_back()
            self.discard()
            if isinstance(error, BrokenPipeError):
                raise OutputClosed(f"{self.name}: closed by its reader") from None
            raise OutputError(f"{self.name}: cannot write: {describe_error(error)}") from None
        self._good += len(data)
        self._pending = b""
        if self._temp is not None:
            self._publish()

    def _publish(self) -> None:
        assert self._temp is not None
        try:
            os.fsync(self._fd)
        except OSError as error:
            self.discard()
            raise OutputError(f"{self.name}: cannot write: {describe_error(error)}") from None
        temp, self._temp = self._temp, None
        _rename_into_place(temp, self.target)

    def _cut_back(self) -> None:
        if self.target.is_file:
            try:
                os.ftruncate(self._fd, self._good)
            except OSError:
                pass

    def close(self) -> None:
        if self._closed:
            return
        if self._pending and self.target.is_file:
            self.append(b"")  # a run without records still replaces the earlier output with its header
        try:
            if self.target.is_file:
                os.fsync(self._fd)
                self._restore_if_gone()
        except OSError as error:
            raise OutputError(f"{self.name}: cannot write: {describe_error(error)}") from None
        finally:
            self._closed = True
            os.close(self._fd)

    def discard(self) -> None:
        """Stop writing: the records already appended stay (they are whole), a header alone is dropped."""
        if self._closed:
            return
        self._closed = True
        os.close(self._fd)
        if self._temp is not None:
            try:
                os.unlink(self._temp)
            except OSError:
                pass

    def _restore_if_gone(self) -> None:
        """The target deleted or replaced by someone else during the run: copy what this run wrote
        (still in the open file) back under its name."""
        assert self.target.real is not None
        mine = os.fstat(self._fd)
        try:
            there = os.stat(self.target.real)
            if (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino):
                return
        except FileNotFoundError:
            pass
        copy = OutputFile(self.target)
        os.lseek(self._fd, 0, os.SEEK_SET)
        while chunk := os.read(self._fd, 1 << 20):
            copy.write(chunk)
        copy.commit()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _cut_partial_record(fd: int) -> int:
    """Cut a half-written last line (a run killed mid-write) off an appended file; returns its size."""
    size = os.fstat(fd).st_size
    position = size
    while position > 0:
        step = min(1 << 16, position)
        chunk = os.pread(fd, step, position - step)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            position = position - step + newline + 1
            break
        position -= step
    if position != size:
        os.ftruncate(fd, position)
    return position


SETTINGS_RECORD_SUFFIX = ".dymn.json"


def settings_record_path(real: Path) -> Path:
    """Where the record of the model and settings that wrote a CSV file goes: a hidden file beside it."""
    return real.parent / f".{real.name}{SETTINGS_RECORD_SUFFIX}"


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (a crash right after it keeps the new file)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def write_settings_record(done: OutputFile, header: dict[str, object]) -> None:
    """Beside a complete FILE output about to be renamed into place, the record of the model and
    settings that wrote it, bound to its content by SHA-256: if the rename never happens, or the
    file is changed later, the record no longer matches and `--resume` refuses the file."""
    if done.target.real is None:
        return
    record = OutputFile(settings_record_path(done.target.real))
    record.write(json.dumps({**header, "sha256": done.sha256.hexdigest(), "size": done.size}) + "\n")
    record.commit()


def read_settings_record(target: Path) -> dict[str, object] | None:
    """The model and settings recorded for an output written with `write_settings_record`; None when
    there is no record, `ValueError` when the file is not the one the record describes."""
    real = Path(os.path.realpath(target))
    try:
        record = json.loads(settings_record_path(real).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    size = 0
    with open(real, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    if size != record.get("size") or digest.hexdigest() != record.get("sha256"):
        raise ValueError(f"it was changed after dymn-tag wrote it (it no longer matches {settings_record_path(real).name})")
    return {key: value for key, value in record.items() if key not in ("sha256", "size")}


@contextmanager
def written(target: Target | Path | None, *, make_folders: bool = False) -> Iterator[OutputFile]:
    """`with written(path) as out: out.write(...)`: the output appears whole when the block ends,
    and not at all if it raises (`make_folders`: create missing folders above a FILE first)."""
    if make_folders and isinstance(target, Path):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{target}: cannot write: {describe_error(error)}") from None
    out = OutputFile(target)
    try:
        yield out
        out.commit()
    except BaseException:
        out.discard()
        raise


def check_folder(path: Path, *, option: str) -> None:
    """A folder target (`--output-dir`, `--plot DIR`): an existing folder, or one that can be made."""
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{option} {path}: not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            reason = "read-only file system" if _read_only_file_system(path) else "permission denied"
            raise UsageError(f"{option} {path}: cannot write in this folder ({reason})")
        return
    above = Path(os.path.abspath(path)).parent
    while not above.exists():
        above = above.parent
    if not above.is_dir():
        raise UsageError(f"{option} {path}: cannot make this folder: a part of its path is a file")
    if not os.access(above, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot make this folder in {above} (permission denied)")
