"""The progress display as a terminal sees it: `dymn-tag` under a pseudo-terminal (pty), on one long
file, must show a spinner while the model loads and a bar by audio duration that moves inside the file."""

from __future__ import annotations

import os
import pty
import re
import select
import time

import numpy as np
import soundfile

from tests.support import DYMN04_WEIGHTS, DYMN_TAG

WEIGHTS = str(DYMN04_WEIGHTS)
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(args: list[str], timeout: float = 180.0) -> tuple[int, str]:
    """Run `dymn-tag` with stdin, stdout and stderr on a pseudo-terminal; its exit status and what
    the terminal received, without the escape sequences."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: on the terminal
        os.environ.update(COLUMNS="120", LINES="40", TERM="xterm")
        os.execv(DYMN_TAG, [DYMN_TAG, *args])
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # (Linux: EIO once the child has closed the terminal)
                    break
                if not chunk:
                    break
                received += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), ANSI.sub(b"", received).decode("utf-8", "replace")


def test_progress_moves_by_audio_duration_inside_one_long_file(tmp_path):
    rate, seconds = 16_000, 90
    t = np.arange(rate * seconds) / rate
    clip = tmp_path / "long.wav"
    soundfile.write(clip, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, subtype="PCM_16")
    # 1 s windows, 2 a batch: 45 batches through the network, so that the bar has steps to show.
    code, screen = run_in_terminal(
        [str(clip), "-w", WEIGHTS, "--window", "1", "--hop", "1", "--batch-size", "2", "-o", str(tmp_path / "labels.csv")]
    )
    assert code == 0, screen
    assert "importing torch" in screen or "loading the model" in screen  # something moves while torch loads
    inside = re.findall(r"tagging\W+(\d+)% (\d+:\d\d:\d\d)/0:01:30 audio\s+0/1 files ETA (\S+)", screen)
    percentages = {int(p) for p, _, _ in inside}
    assert len({p for p in percentages if 0 < p < 100}) >= 3, screen[-2000:]  # it advanced inside the file
    assert any(re.fullmatch(r"\d+:\d\d:\d\d", eta) for _, _, eta in inside)  # and knew when it would end
    summary = [line for line in screen.splitlines() if "tagged," in line][-1].strip()
    assert summary.startswith("dymn-tag: 1 tagged, 0 failed, 0:01:30 of audio in ") and len(summary) <= 100
