"""A program on a real pseudo-terminal, read as a user sees it: what the screen shows (pyte emulates the
terminal: cursor moves, erased lines, redrawn progress), not the bytes that went by."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pyte


class Terminal:
    """`argv` running on a pty of `columns` x `lines`; `wait_for` reads until the screen shows something."""

    def __init__(
        self, argv: list[str], *, columns: int = 120, lines: int = 40, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.screen = pyte.Screen(columns, lines)
        self.stream = pyte.ByteStream(self.screen)
        self.received = b""
        environment = {**os.environ, "COLUMNS": str(columns), "LINES": str(lines), "TERM": "xterm", **(env or {})}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child, on the terminal
            try:
                if cwd is not None:
                    os.chdir(cwd)
                os.execvpe(argv[0], argv, environment)
            finally:
                os._exit(127)
        self.status: int | None = None

    def text(self) -> str:
        """The screen, its lines' trailing blanks removed, without the empty lines at the bottom."""
        return "\n".join(line.rstrip() for line in self.screen.display).rstrip("\n")

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def _read(self, timeout: float) -> bool:
        """Read what has arrived within `timeout`; False once the program has closed the terminal."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # (Linux: EIO once the child has closed the terminal)
            return False
        if not chunk:
            return False
        self.received += chunk
        self.stream.feed(chunk)
        return True

    def wait_for(self, condition: Callable[[str], bool], timeout: float = 60.0) -> str:
        """Read until `condition(screen text)` holds; the screen then (AssertionError with it on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            if condition(self.text()):
                return self.text()
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed what was awaited:\n{self.text()}")
            if not self._read(0.1):
                if condition(self.text()):
                    return self.text()
                raise AssertionError(f"the program ended before the screen showed what was awaited:\n{self.text()}")

    def wait_exit(self, timeout: float = 180.0) -> int:
        """Read to the end of the program's output; its exit code."""
        deadline = time.monotonic() + timeout
        while self._read(0.1):
            if time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"the program did not end:\n{self.text()}")
        return self.close(wait=True)

    def close(self, *, wait: bool = False) -> int:
        """The exit code; a program still running is killed, unless `wait` (it has closed the terminal)."""
        if self.status is None:
            finished, status = os.waitpid(self.pid, 0 if wait else os.WNOHANG)
            if not finished:
                os.kill(self.pid, signal.SIGKILL)
                _, status = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(status)
            os.close(self.fd)
        return self.status

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
