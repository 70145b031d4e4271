"""Run a command; write its wall seconds, exit code and peak RSS (MiB: the largest of it and of the
processes it waited for) as JSON to a file.

    python benchmarks/peak_rss.py RESULT.json COMMAND [ARGS...]

The benchmarks start commands through this small process on purpose: Linux counts the peak memory of
the process that spawns a command (through vfork, as Python's subprocess does) into the command's
own peak, so a command spawned straight from a benchmark that has loaded models and audio would
report the benchmark's memory instead of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> None:
    result, command = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    record = {"wall": wall, "returncode": os.waitstatus_to_exitcode(status), "peak_mib": usage.ru_maxrss / 1024}
    with open(result, "w", encoding="utf-8") as out:
        json.dump(record, out)


if __name__ == "__main__":
    main()
