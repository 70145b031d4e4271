"""Job sources that kill the decode worker process handling them, for the reliability tests.

A separate, light module: spawned decode workers import it (to unpickle a job) without torch.
"""

from __future__ import annotations

import os
import resource
import signal
import time


class SegfaultOnOpen(os.PathLike):
    """A path whose opening crashes the process like a decoder segfault would."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __fspath__(self) -> str:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(30)  # the signal is on its way
        raise AssertionError("still alive after SIGSEGV")

    def __str__(self) -> str:
        return self.name


class ExitOnArrival:
    """A job source whose unpickling ends the worker before it starts the job (exit code 3)."""

    def __reduce__(self):
        return (os._exit, (3,))


def die_at_start(*args) -> None:
    """A decode worker body that cannot even start (as where the interpreter may not be run)."""
    os._exit(255)
