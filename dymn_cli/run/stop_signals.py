"""SIGINT and SIGTERM stop a run cleanly: raised where the run is, then only noted while outputs finish."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dymn_cli.errors import SignalReceived

__all__ = ["StopSignals", "signals_as_exceptions"]


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
            raise SignalReceived(signum)

    def disarm(self) -> None:
        self.armed = False


@contextmanager
def signals_as_exceptions() -> Iterator[StopSignals]:
    """SIGTERM stops a run like Ctrl-C does: cleanly, keeping every finished result. (Signal handlers
    can only be set from the main thread: elsewhere the signals keep their handlers.)"""
    stop = StopSignals()
    main_thread = threading.current_thread() is threading.main_thread()
    handled = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN] if main_thread else []
    previous = {signum: signal.signal(signum, stop) for signum in handled}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
