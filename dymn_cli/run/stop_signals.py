"""SIGINT and SIGTERM stop a run cleanly: raised where the run is, then only noted while outputs finish.

A process raises `SignalReceived` once per stop: every handler goes through `raise_once`, so that a
second or third signal, at whatever moment (in a `finally` that closes the outputs, in the worker pool's
shutdown, in the interpreter's own end), is only noted. A second raise there would cut the cleanup short,
or land in `threading`'s shutdown as "Exception ignored ... SignalReceived" and abort the process."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dymn_cli.errors import SignalReceived

__all__ = ["StopSignals", "raise_once", "signals_as_exceptions", "start_stop_scope", "stopping"]

_raised: list[int] = []  # the signal this process raised `SignalReceived` for, once it has


def stopping() -> int | None:
    """The signal that is stopping this process, if one was raised."""
    return _raised[0] if _raised else None


def raise_once(signum: int) -> None:
    """Raise `SignalReceived` for the first stop signal; later ones are only noted (see the module docstring)."""
    if _raised:
        return
    _raised.append(signum)
    raise SignalReceived(signum)


def start_stop_scope() -> None:
    """A new run begins (a library caller may run again after a stop was handled): signals raise again."""
    _raised.clear()


class StopSignals:
    """SIGINT and SIGTERM stop a run cleanly: the first one raises `SignalReceived` where the run is;
    after that, or once disarmed (the outputs are being finished), a signal is only noted."""

    def __init__(self) -> None:
        self.armed = True
        self.received: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received = signum
        if self.armed:
            self.armed = False
            raise_once(signum)

    def disarm(self) -> None:
        self.armed = False


@contextmanager
def signals_as_exceptions() -> Iterator[StopSignals]:
    """SIGTERM stops a run like Ctrl-C does: cleanly, keeping every finished result. (Signal handlers
    can only be set from the main thread: elsewhere the signals keep their handlers.)"""
    stop = StopSignals()
    start_stop_scope()
    main_thread = threading.current_thread() is threading.main_thread()
    handled = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN] if main_thread else []
    previous = {signum: signal.signal(signum, stop) for signum in handled}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
