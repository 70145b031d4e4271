"""Running a subprocess that file modes apply to, even when the tests run as root.

Root reads a mode-000 file through the DAC_OVERRIDE and DAC_READ_SEARCH capabilities. Dropping
those two from the bounding set (util-linux `setpriv`) keeps uid 0, so the interpreter and the
project stay reachable wherever they are installed, but makes the file modes count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def mode_respecting_prefix() -> list[str] | None:
    """The command prefix under which mode 000 denies reading, or None when there is none here."""
    prefix: list[str] = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            return None
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_bytes(b"x")
        probe.chmod(0)
        try:
            done = subprocess.run([*prefix, "cat", str(probe)], capture_output=True)
        finally:
            probe.chmod(0o600)
    return prefix if done.returncode != 0 else None
