"""glibc malloc settings for a tagging process: keep freed memory for reuse instead of handing it back.

Every network call allocates and frees feature maps of a few megabytes, from several lanes at once, and
the decode workers do the same with blocks of audio. With glibc's defaults much of that memory goes back
to the kernel when it is freed (trimmed heaps, a mmap per large block) and comes back as fresh pages
that fault and are zeroed on first touch, which also serialises the lanes on the process's memory map.
Fixed thresholds keep it in the process: `dymn-tag` runs up to 6 % faster on a folder and on a long
file, for a few tens of MiB more peak memory at most (`benchmarks/end_to_end.py`, "glibc malloc
defaults" row).

Applied by the command line and the decode workers (processes this package owns), not by importing
the library. Someone who sets any of glibc's own malloc tunables keeps exactly those.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters (malloc.h)

SETTINGS = {
    M_MMAP_THRESHOLD: 32 << 20,  # blocks below 32 MiB come from the heap, not a mmap each
    M_TRIM_THRESHOLD: 1 << 30,  # a heap's free top goes back to the kernel only beyond 1 GiB
    M_TOP_PAD: 64 << 20,  # and grows by 64 MiB at a time
}
USER_TUNABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")


def keep_freed_memory() -> bool:
    """Apply `SETTINGS` with glibc's `mallopt`; whether they were all applied. Not on other C
    libraries or 32-bit glibc (whose mmap threshold stops short of 32 MiB), nor when the environment
    sets a malloc tunable (MALLOC_*_ or glibc.malloc.* in GLIBC_TUNABLES)."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or sys.maxsize <= 2**32:
        return False
    if any(name in os.environ for name in USER_TUNABLES) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    applied = [mallopt(parameter, value) == 1 for parameter, value in SETTINGS.items()]
    return all(applied)
