"""Files that appear whole or not at all: written to a temporary name beside the target, then renamed.

One helper for every file the package writes whole (outputs, event files, embeddings, pictures,
downloaded weights and their hash records): `AtomicFile` for a file written over a whole run,
`atomic_text_file` and `atomic_binary_file` for one written in one go.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

__all__ = ["AtomicFile", "atomic_binary_file", "atomic_text_file", "new_file_mode"]


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
        handle, self.temp_name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".part", dir=self.target.parent)
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
