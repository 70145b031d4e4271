"""Writing one output whole: to a temporary file beside a FILE target, renamed over it when complete
(through a symlink, to the file it points to); a STREAM target (pipe, terminal, device) written in place.

A write error removes the temporary file: the earlier output stays. Every `OSError` becomes one
`OutputError` naming the target; a reader that went away (`EPIPE`) becomes `OutputClosed`.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dymn_cli.atomic import TEMP_SUFFIX, new_file_mode, temp_prefix
from dymn_cli.errors import OutputClosed, OutputError
from dymn_cli.writers.targets import Target, describe_error, resolve_target

__all__ = ["OutputFile", "rename_into_place", "written"]


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
        self._on_terminal = False
        try:
            if self.target.is_file:
                assert self.target.real is not None
                handle, self.temp_name = tempfile.mkstemp(
                    prefix=temp_prefix(self.target.real), suffix=TEMP_SUFFIX, dir=self.target.real.parent
                )
                os.chmod(self.temp_name, new_file_mode())  # mkstemp's 0o600 would hide the output from other users
            elif self.target.descriptor is not None:
                handle = os.dup(self.target.descriptor)
            else:
                handle = os.open(self.target.real, os.O_WRONLY)  # (no O_TRUNC: a pipe or device is written, not replaced)
            self._stream: io.BufferedWriter = open(handle, "wb", closefd=True)  # type: ignore[assignment]
            self._on_terminal = not self.target.is_file and os.isatty(handle)
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
            if self._on_terminal:  # (whole, with the progress display off the screen meanwhile)
                from dymn_cli.terminal import terminal_output

                with terminal_output():
                    self._stream.write(data)
                    self._stream.flush()
            else:
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
                rename_into_place(self.temp_name, self.target)
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


def rename_into_place(temp_name: str, target: Target) -> None:
    """Rename a complete temporary file over the target. If that fails (the target was replaced by a
    folder mid-run, say), the complete file is kept under its temporary name and the error says so."""
    assert target.real is not None
    try:
        os.replace(temp_name, target.real)
    except OSError as error:
        raise OutputError(
            f"{target.name}: cannot write: {describe_error(error)} (this run's complete output is kept in {temp_name})"
        ) from None
    sync_folder(target.real.parent)


def sync_folder(folder: Path) -> None:
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
