"""`dymn-tag evaluate` run as users run it, for the command's test modules."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import SAFETY_NET, dymn_tag


def evaluate(run: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    """`dymn-tag evaluate ARGS` in the folder `run`; its exit status must be `expect`."""
    done = dymn_tag(["evaluate", *args], cwd=run, timeout=SAFETY_NET)
    assert done.returncode == expect, done.stderr.decode()
    return done


def one_line(done: subprocess.CompletedProcess, *words: str) -> str:
    """The run's one error line, holding every one of `words`, and no traceback."""
    err = done.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("dymn-tag: error: ") and "Traceback" not in err, err
    assert all(word in err for word in words), err
    return err
