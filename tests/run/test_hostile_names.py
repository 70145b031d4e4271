"""Names no terminal or UTF-8 file should take raw, and numbers that make no sense (#14).

Any name round-trips through every output format, `--resume` and merge, escaped on stderr; the name
escapes themselves (a hypothesis property); CSV quoting of carriage returns; the limits on window, hop
and timeout; long windows in smaller batches.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dymn_cli.terminal import printable
from dymn_cli.writers.names import csv_name, json_text, name_from_csv
from tests.audio_factory import make_audio_file
from tests.hostile_corpus import odd_named_copies
from tests.run.hostile_runs import FAST, assert_clean_stderr, dymn_tag, jsonl, summary_of
from tests.support import SAFETY_NET


@pytest.mark.slow
def test_any_name_round_trips_through_every_format_resume_and_merge(tmp_path, tagger):
    good = make_audio_file(tmp_path / "seed.wav", seconds=1.0).read_bytes()
    names = odd_named_copies(tmp_path / "odd", good)
    bad = os.fsdecode(os.path.join(os.fsencode(tmp_path / "odd"), b"esc\x1b]0;title\x07\xff.wav"))
    Path(bad).write_bytes(b"not audio at all")
    # The command: stderr escapes the names, stdout (JSON Lines) holds them all.
    done = dymn_tag([*FAST, "-j", "0", *names, bad])
    text = assert_clean_stderr(done.stderr)
    assert summary_of(text) == (len(names), 1, 0)
    shown = [line for line in text.splitlines() if "not a readable audio file" in line]
    assert shown == [f"dymn-tag: {printable(bad)}: not a readable audio file (unknown format or corrupt data)"]
    assert [json.loads(line)["path"] for line in done.stdout.decode("utf-8").splitlines()] == [*names, bad]
    # Every format writes them, --resume and merge recognise them (the run's library function, one model).
    from dymn_cli.run.runner import RunSettings, label_inputs
    from dymn_cli.writers.base import OutputOptions
    from dymn_cli.writers.merge import merge_outputs

    settings = RunSettings(window=1.0, hop=1.0, workers=0)
    for fmt in ["csv", "json", "jsonl"] + (["parquet"] if _has_pyarrow() else []):
        out = tmp_path / f"out.{fmt}"
        first = label_inputs([*names, bad], tagger=tagger, output=out, options=OutputOptions(top=2), settings=settings)
        assert (first.tagged, first.failed) == (len(names), 1)
        assert set(_paths_in(out, fmt)) == set(names), fmt
        again = label_inputs(
            [*names, bad], tagger=tagger, output=out, options=OutputOptions(top=2), settings=settings, resume=True
        )
        assert again.skipped == len(names) + (fmt in ("json", "jsonl")) and again.tagged == 0, fmt
        merged = tmp_path / f"merged.{fmt}"
        merge_outputs([out], merged)
        assert set(_paths_in(merged, fmt)) == set(names), fmt


def _has_pyarrow() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _paths_in(path: Path, fmt: str) -> list[str]:
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as stream:
            return [name_from_csv(row[0]) for row in list(csv.reader(stream))[1:] if row]
    if fmt == "json":
        return [r["path"] for r in json.loads(path.read_text(encoding="utf-8"))["files"] if "labels" in r]
    if fmt == "jsonl":
        return [r["path"] for r in jsonl(path) if "labels" in r]
    import pyarrow.parquet as pq

    return [name_from_csv(p) for p in pq.read_table(path).column("path").to_pylist()]


@given(
    st.text(alphabet=st.sampled_from(["a", "\\", "x", "f", "8", "0", "\r", "\n", "\x1b", "\udcff", "\udc80", "é"]), max_size=12)
)
@settings(max_examples=300, derandomize=True, database=None)
def test_name_escapes_round_trip_and_stay_utf8(name):
    assert name_from_csv(csv_name(name)) == name
    assert json.loads(json_text({"path": name}))["path"] == name
    csv_name(name).encode("utf-8")
    json_text(name).encode("utf-8")
    shown = printable(name)
    shown.encode("utf-8")
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", shown)


def test_csv_quotes_carriage_returns(tmp_path):
    from dymn_cli.writers.names import csv_writer

    with open(tmp_path / "x.csv", "w", encoding="utf-8", newline="") as stream:
        csv_writer(stream).writerows([["cr\rname.wav", 1], ["plain.wav", 2]])
    with open(tmp_path / "x.csv", encoding="utf-8", newline="") as stream:
        assert stream.read() == '"cr\rname.wav",1\nplain.wav,2\n'


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--window", "100000", "window must be at most 600 s, got 100000"),
        ("--window", "0.01", "window must be at least 0.09 s (9 log-mel frames), got 0.01"),
        ("--hop", "1e-6", "hop must be at least 0.01 s (one log-mel frame), got 1e-06"),
        ("--hop", "nan", "--hop: nan is not a positive number of seconds"),  # (checked while parsing, #16)
        ("--file-timeout", "0", "--file-timeout: 0 is not a positive number of seconds"),
    ],
)
def test_numbers_that_make_no_sense_are_one_usage_error(two_files, option, value, message):
    args = [a for a in FAST if a not in ("--window", "--hop", "1")] if option in ("--window", "--hop") else FAST
    done = dymn_tag([*args, option, value, two_files[0]], timeout=SAFETY_NET)
    assert done.returncode == 2
    assert assert_clean_stderr(done.stderr).strip() == f"dymn-tag: error: {message}"


def test_long_windows_make_smaller_batches():
    from dymn_cli.audio.windows import WindowGrid

    grid = WindowGrid.from_seconds(window=600, hop=600, sample_rate=32_000)
    assert grid.batch_size(128) == 2 and grid.batch_size(1) == 1
    assert WindowGrid.from_seconds(window=10, hop=10, sample_rate=32_000).batch_size(128) == 128
