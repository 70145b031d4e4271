"""`-o -` is standard output in every command that writes a file, as `-` among the inputs is standard
input: no file named `-` is written (tagging, evaluate, merge and export once wrote one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.audio_factory import tone
from tests.support import DYMN04_WEIGHTS, dymn_tag

pytestmark = pytest.mark.slow  # real dymn-tag runs, an export among them


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dash")
    for label, freq in (("Dog", 300), ("Cat", 900)):
        tone(root / "clips" / label / "a.wav", freq=freq, seconds=1.5)
    done = dymn_tag(["clips", "--weights", str(DYMN04_WEIGHTS), "--top", "all", "-o", "r.jsonl", "-q"], cwd=root)
    assert done.returncode == 0, done.stderr.decode()
    return root


@pytest.mark.parametrize(
    "args, first_byte",
    [
        (["clips", "--weights", str(DYMN04_WEIGHTS), "--top", "2", "-f", "jsonl"], b"{"),
        (["evaluate", "r.jsonl", "--truth", "clips", "-f", "json"], b"{"),
        (["merge", "r.jsonl"], b"{"),
        (["export", "--weights", str(DYMN04_WEIGHTS)], b"\x08"),  # (an ONNX model's first protobuf field)
    ],
    ids=["tag", "evaluate", "merge", "export"],
)
def test_dash_writes_to_standard_output(run, args, first_byte):
    done = dymn_tag([*args, "-o", "-"], cwd=run)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout[:1] == first_byte and not (run / "-").exists()
    if first_byte == b"{":
        json.loads(done.stdout.decode().splitlines()[0] if args[0] != "evaluate" else done.stdout)
