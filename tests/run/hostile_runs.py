"""How the hostile-input tests (tests/run/test_hostile_*.py, test_stalled_inputs, test_unusable_checkpoints)
run `dymn-tag` and read what it wrote: the fast options, the summary line, stderr that must be clean,
the JSON Lines records."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.support import DYMN04_WEIGHTS, DYMN_TAG

WEIGHTS = str(DYMN04_WEIGHTS)
FAST = ["--weights", WEIGHTS, "--device", "cpu", "--window", "1", "--hop", "1", "--top", "2"]
SUMMARY = re.compile(r"^dymn-tag: (\d+) tagged, (\d+) failed(?:, (\d+) skipped)?")  # (no skipped part when 0)


def dymn_tag(args: list[str], *, timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    """(tests.support's takes stdin as bytes; these tests give it descriptors: FIFOs, pipes, /dev/zero)"""
    return subprocess.run([DYMN_TAG, *args], capture_output=True, timeout=timeout, **kwargs)


def summary_of(stderr: str) -> tuple[int, int, int]:
    found = SUMMARY.match(stderr.splitlines()[-1])
    assert found, stderr[-2000:]
    return int(found[1]), int(found[2]), int(found[3] or 0)


def assert_clean_stderr(stderr: bytes) -> str:
    """Every line is ours ("dymn-tag: ..."), there is no traceback, and nothing in it can drive a
    terminal: no control character but the newline, no byte that is not UTF-8."""
    text = stderr.decode("utf-8")  # (raises if a raw non-UTF-8 byte got through)
    assert "Traceback" not in text, text[-3000:]
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), repr(text[-2000:])
    for line in text.splitlines():
        assert line.startswith("dymn-tag: "), repr(line)
    return text


def jsonl(path: Path) -> list[dict]:
    """The input records of a JSONL file (its first line, the header record, has no path)."""
    return [r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if "path" in r]
