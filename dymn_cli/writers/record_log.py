"""JSON Lines' output: whole records appended and flushed one at a time, so a killed run keeps every finished one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dymn_cli.atomic import TEMP_SUFFIX, new_file_mode, temp_prefix
from dymn_cli.errors import OutputClosed, OutputError
from dymn_cli.writers.output_file import OutputFile, rename_into_place
from dymn_cli.writers.targets import Target, describe_error, resolve_target

__all__ = ["RecordLog"]


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
                    prefix=temp_prefix(self.target.real), suffix=TEMP_SUFFIX, dir=self.target.real.parent
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
        rename_into_place(temp, self.target)

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
