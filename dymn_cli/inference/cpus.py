"""How many decode processes a machine can use."""

from __future__ import annotations

import logging
import os

__all__ = ["usable_cpus", "usable_workers"]


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, which a container or `taskset` narrows."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def usable_workers(requested: int) -> int:
    """At most as many decode processes as `usable_cpus`: more would only cost memory (`-j 64` on
    2 cores peaked at 3.6 GB), never time. A capped count is said in one line."""
    usable = usable_cpus()
    if requested <= usable:
        return requested
    logging.getLogger("dymn_cli").info("note: %d decode workers asked for, %d CPUs usable: %d started", requested, usable, usable)
    return usable
