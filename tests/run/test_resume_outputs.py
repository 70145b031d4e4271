"""`--resume` with several -o: each file output continues from its own records; an input is tagged
again only where some output lacks it, and no output gets a record twice."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dymn_cli.errors import UsageError
from dymn_cli.run.runner import RunSettings, label_inputs
from dymn_cli.writers.base import OutputOptions
from tests.audio_factory import make_audio_file
from tests.support import FakeTagger


@pytest.fixture
def clips(tmp_path) -> list[Path]:
    paths = [tmp_path / "in" / f"{n}.wav" for n in range(4)]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        make_audio_file(path, seconds=0.2)
    return paths


def run(paths, **kwargs):
    kwargs.setdefault("settings", RunSettings(workers=0, decode_first=False))
    kwargs.setdefault("options", OutputOptions(top=2))
    return label_inputs([str(p) for p in paths], tagger=FakeTagger(), **kwargs)


def jsonl_paths(path: Path) -> list[str]:
    """The inputs a JSON Lines output records, in order (records are the lines with a path)."""
    return [r["path"] for r in map(json.loads, path.read_text().splitlines()) if "path" in r]


def csv_paths(path: Path) -> list[str]:
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    return list(dict.fromkeys(row["path"] for row in rows))  # (a row per label: each input once, in order)


def test_outputs_that_hold_different_inputs_are_each_completed_once(clips, tmp_path):
    table, lines = tmp_path / "out.csv", tmp_path / "out.jsonl"
    run(clips[:1], output=lines)  # the JSONL holds the first input,
    run(clips[:2], output=table)  # the CSV the first two
    summary = run(clips, output=table, more_outputs=[lines], resume=True)
    assert (summary.skipped, summary.tagged) == (1, 3)  # the second again, for the JSONL only
    expected = [str(c) for c in clips]
    assert csv_paths(table) == expected and jsonl_paths(lines) == expected
    with open(table, newline="") as stream:
        assert len(list(csv.DictReader(stream))) == 2 * len(clips)  # top 2: no input's rows twice


def test_a_new_output_beside_a_resumed_one_gets_every_input(clips, tmp_path):
    table, parquet = tmp_path / "out.csv", tmp_path / "out.jsonl"
    run(clips[:3], output=table)
    summary = run(clips, output=table, more_outputs=[parquet], resume=True)
    assert summary.tagged == 4 and csv_paths(table) == jsonl_paths(parquet) == [str(c) for c in clips]


def test_a_resumed_run_that_is_interrupted_keeps_what_each_output_held(clips, tmp_path):
    table, lines = tmp_path / "out.csv", tmp_path / "out.jsonl"
    run(clips[:3], output=table)
    run(clips[:2], output=lines)
    summary = label_inputs(
        [str(c) for c in clips],
        tagger=FakeTagger(stop_after=0),  # stopped before the first input it is given (the third)
        output=table,
        more_outputs=[lines],
        resume=True,
        settings=RunSettings(workers=0, decode_first=False),
        options=OutputOptions(top=2),
    )
    assert summary.interrupted is not None
    assert csv_paths(table) == [str(c) for c in clips[:3]] and jsonl_paths(lines) == [str(c) for c in clips[:2]]


def test_resume_needs_every_output_to_be_a_file(clips, tmp_path):
    with pytest.raises(UsageError, match="--resume needs a file to continue"):
        run(clips, output=tmp_path / "out.csv", more_outputs=[Path("/dev/stdout")], resume=True)
