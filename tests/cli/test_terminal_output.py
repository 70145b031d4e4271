"""What a user sees on a real terminal (a pty, read as a screen by pyte): results, failures and the
summary stand alone, never drawn into the progress display, which leaves nothing behind."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile

from tests.support import DYMN04_WEIGHTS, DYMN_TAG, EXAMPLES
from tests.terminal import Terminal

pytestmark = pytest.mark.slow  # dymn-tag runs

PROGRESS = re.compile(r"tagging|ETA|importing torch|loading the model|[\u2800-\u28ff]")


def test_the_readmes_first_example_shows_the_table_alone():
    """`dymn-tag audio/chimes_and_noise.wav --top 5 --format table` in examples/, as the README runs it."""
    args = ["audio/chimes_and_noise.wav", "--top", "5", "--format", "table", "--weights", "../tests/golden/dymn04_seed0.pt"]
    with Terminal([DYMN_TAG, *args], columns=100, cwd=EXAMPLES) as terminal:
        assert terminal.wait_exit() == 0, terminal.text()
        lines = terminal.text().splitlines()
    assert lines[0] == "audio/chimes_and_noise.wav  (12.0 s, 2 windows)"
    table = lines[1:-1]
    assert len(table) == 3 + 5 + 1  # header, 5 labels, bottom edge
    assert table[0].startswith("┏") and table[-1].startswith("└") and all(line[0] in "┃┡│" for line in table[1:-1])
    assert all(line.endswith(("┓", "┃", "┩", "│", "┘")) for line in table)  # every row whole, nothing after it
    assert lines[-1].startswith("dymn-tag: 1 tagged, 0 failed, 0:00:12 of audio in ")
    assert not any(PROGRESS.search(line) for line in lines), lines


def test_rows_failures_and_summary_on_one_terminal_each_stand_alone(tmp_path):
    rate = 16_000
    for n in range(3):
        tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * n) * np.arange(rate * 3) / rate)
        soundfile.write(tmp_path / f"clip{n}.wav", tone.astype(np.float32), rate)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file" * 10)
    args = ["clip0.wav", "broken.wav", "clip1.wav", "clip2.wav", "-w", str(DYMN04_WEIGHTS), "-f", "csv", "--top", "2"]
    args += ["--window", "1", "--hop", "0.5", "-b", "1"]  # (many small batches: the bar redraws between rows)
    with Terminal([DYMN_TAG, *args], columns=100, cwd=tmp_path) as terminal:
        assert terminal.wait_exit() == 1, terminal.text()
        lines = terminal.text().splitlines()
    row = re.compile(r"clip\d\.wav,[12],[^,].*,/m/\w+,\d+,[01]\.\d+")
    expected = ["path,rank,label,mid,index,score", "dymn-tag: broken.wav: ", "dymn-tag: 3 tagged, 1 failed, "]
    for line in lines:
        assert row.fullmatch(line) or any(line.startswith(e) for e in expected), lines
    assert sum(bool(row.fullmatch(line)) for line in lines) == 6
    assert lines[-1].startswith("dymn-tag: 3 tagged, 1 failed")
