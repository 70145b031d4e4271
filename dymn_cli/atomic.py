"""Files that appear whole or not at all: written to a temporary name beside the target, then renamed.

One helper for every file the package writes whole (outputs, event files, embeddings, pictures,
downloaded weights and their hash records): `AtomicFile` for a file written over a whole run,
`atomic_text_file` and `atomic_binary_file` for one written in one go.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

__all__ = [
    "TEMP_SUFFIX",
    "AtomicFile",
    "atomic_binary_file",
    "atomic_text_file",
    "fitted_name",
    "name_limit",
    "new_file_mode",
    "temp_prefix",
]

NAME_MAX = 255
"""Bytes a file name may have where the file system does not say (ext4, XFS, btrfs, tmpfs: 255)."""
TEMP_SUFFIX = ".part"
TEMP_RANDOM = 8  # characters `tempfile.mkstemp` puts between its prefix and suffix


def name_limit(folder: str | os.PathLike[str]) -> int:
    """The longest file name, in bytes, that `folder`'s file system takes."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return NAME_MAX


def fitted_name(name: str, *, limit: int = NAME_MAX, reserve: int = 0) -> str:
    """`name`, or when its bytes and `reserve` more exceed `limit`, a shorter name derived from it: its
    start, `~`, 10 hex digits of its SHA-256 and its last suffix (`long...~3f9a0c12de.csv`). Derived,
    so that every run gives the same name; distinct, so that two long names do not become one."""
    encoded = os.fsencode(name)
    if len(encoded) + reserve <= limit:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:10]
    suffix = os.fsencode(os.path.splitext(name)[1])
    suffix = suffix if len(suffix) <= 16 else b""
    keep = max(0, limit - reserve - len(suffix) - 1 - len(digest))
    return os.fsdecode(encoded[:keep] + b"~" + digest.encode() + suffix)


def temp_prefix(target: str | os.PathLike[str]) -> str:
    """`mkstemp`'s prefix for the temporary file beside `target` (`.NAME.`), shortened (`fitted_name`)
    so that the whole temporary name fits the file system's limit however long the target's name."""
    path = Path(target)
    reserve = 2 + TEMP_RANDOM + len(TEMP_SUFFIX)  # the two dots, mkstemp's random characters, .part
    return f".{fitted_name(path.name, limit=name_limit(path.parent), reserve=reserve)}."


def new_file_mode() -> int:
    """The permissions a plain `open(..., "w")` would give a new file (0o666 less the umask);
    `tempfile.mkstemp` makes its files 0o600, which would hide outputs from other users."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


class AtomicFile:
    """`target`, written under a temporary name beside it (`.NAME.XXXX.part`): `commit()` flushes it
    to disk and renames it into place, `discard()` removes it. Text is UTF-8 with newlines as written."""

    def __init__(self, target: str | os.PathLike[str], *, binary: bool = False) -> None:
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        handle, self.temp_name = tempfile.mkstemp(prefix=temp_prefix(self.target), suffix=TEMP_SUFFIX, dir=self.target.parent)
        try:
            os.chmod(self.temp_name, new_file_mode())
            self.stream: IO[Any] = os.fdopen(handle, "wb") if binary else os.fdopen(handle, "w", encoding="utf-8", newline="")
        except BaseException:
            os.close(handle)
            os.unlink(self.temp_name)
            raise

    def commit(self) -> None:
        try:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
            os.replace(self.temp_name, self.target)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        self.stream.close()
        try:
            os.unlink(self.temp_name)
        except OSError:
            pass


@contextmanager
def _committed(file: AtomicFile) -> Iterator[Any]:
    try:
        yield file.stream
    except BaseException:
        file.discard()
        raise
    file.commit()


def atomic_text_file(target: str | os.PathLike[str]) -> AbstractContextManager[TextIO]:
    """`with atomic_text_file(path) as stream: ...` writes `path` only if the block completes."""
    return _committed(AtomicFile(target))


def atomic_binary_file(target: str | os.PathLike[str]) -> AbstractContextManager[BinaryIO]:
    """`with atomic_binary_file(path) as stream: ...` writes `path` only if the block completes."""
    return _committed(AtomicFile(target, binary=True))
