"""dymn_cli.terminal on a real pseudo-terminal: log lines written while a progress display is on the
screen stand alone, above it, and the display leaves nothing behind."""

from __future__ import annotations

import sys
import textwrap

from tests.support import SAFETY_NET
from tests.terminal import Terminal

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from dymn_cli.cli.progress import RunProgress

    logging.basicConfig(level=logging.INFO, handlers=[logging.StreamHandler(sys.stderr)], format="dymn-tag: %(message)s")
    log = logging.getLogger("dymn_cli")
    with RunProgress(enabled=True) as progress:
        with progress.status("loading the model"):
            log.warning("warning: while the spinner turns")
        progress.start([])
        for n in range(3):
            log.warning("warning: line %d while the bar is shown", n)
    log.info("the end")
    """
)


def test_log_lines_written_under_a_live_display_stand_alone(tmp_path):
    script = tmp_path / "show.py"
    script.write_text(SCRIPT)
    with Terminal([sys.executable, str(script)], columns=100) as terminal:
        assert terminal.wait_exit(timeout=SAFETY_NET) == 0, terminal.text()
        lines = terminal.text().splitlines()
    assert lines == [
        "dymn-tag: warning: while the spinner turns",
        *(f"dymn-tag: warning: line {n} while the bar is shown" for n in range(3)),
        "dymn-tag: the end",
    ]
