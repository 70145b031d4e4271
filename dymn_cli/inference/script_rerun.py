"""A decode worker that runs the user's script again: Python's "spawn" start method runs the main
script from the top in every worker, where an unguarded `tag_many(workers=N)` would start workers of
its own, for ever. The worker exits at once instead, and the run that started it says why."""

from __future__ import annotations

import os

from dymn_cli.errors import DymnError

__all__ = ["SCRIPT_RERUN_EXIT", "WORKER_ENV", "ScriptRerunInWorkers", "exit_if_script_rerun"]


class ScriptRerunInWorkers(DymnError):
    """`tag_many(workers=N)` called at the top level of a script without `if __name__ == "__main__":`.

    Decode workers are started with multiprocessing's "spawn", which runs the main script again in
    each of them; there the unguarded call would start workers of its own, for ever. A worker that
    finds itself asked to start workers exits at once with `SCRIPT_RERUN_EXIT`, and the run that
    started it raises this error."""

    def __init__(self) -> None:
        super().__init__(
            "tag_many(workers=N) starts decode processes, which run your script again from the top "
            "(Python's 'spawn' start method), and there your script tags again: put the code that tags under "
            '`if __name__ == "__main__":`, or pass workers=0 to decode in this process'
        )


# Set in a decode worker's environment while it starts: a worker never starts workers of its own.
WORKER_ENV = "DYMN_CLI_DECODE_WORKER"
SCRIPT_RERUN_EXIT = 86


def exit_if_script_rerun() -> None:
    """In a decode worker that is running the user's unguarded script again (it builds a tagger or
    starts workers, which a decode worker never does): exit now, quietly, with `SCRIPT_RERUN_EXIT`."""
    if os.environ.get(WORKER_ENV) == "1":
        os._exit(SCRIPT_RERUN_EXIT)
