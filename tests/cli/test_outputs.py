"""Several outputs from one run, the wide table, events limited by --top, Raven's band: through the
real `dymn-tag`, read back with the readers users have (csv, json, pandas)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from dymn_cli.audioset.labels import audioset_classes
from tests.audio_factory import tone
from tests.support import DYMN04_WEIGHTS, DYMN_TAG, SAFETY_NET

WEIGHTS = str(DYMN04_WEIGHTS)
FAST = ["--weights", WEIGHTS, "--device", "cpu", "-j", "0"]


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DYMN_TAG, *args], capture_output=True, text=True, cwd=cwd, timeout=SAFETY_NET, env=dict(os.environ))


def gated_tone(path: Path, *, seconds: float, rate: int) -> Path:
    """A 440 Hz tone, on for 2 s and off for 2 s: events that start and stop."""
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * 440 * t) * ((t % 4) < 2)).astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    tone(root / "a.wav", freq=440, seconds=3.0, noise=0.05)
    tone(root / "b.flac", freq=900, seconds=12.0, rate=16_000, noise=0.05)
    return root


def test_two_outputs_from_one_run_hold_the_same_results(folder, tmp_path):
    table, lines = tmp_path / "labels.csv", tmp_path / "labels.jsonl"
    done = run([str(folder), "-o", str(table), "-o", str(lines), "--top", "3", *FAST])
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(table.open()))
    records = [json.loads(line) for line in lines.read_text().splitlines() if '"path"' in line]
    assert sorted({r["path"] for r in rows}) == sorted(r["path"] for r in records) and len(records) == 2
    for record in records:
        mine = [r for r in rows if r["path"] == record["path"]]
        assert [r["label"] for r in mine] == [label["label"] for label in record["labels"]]
        assert [float(r["score"]) for r in mine] == [label["score"] for label in record["labels"]]


def test_per_input_files_and_a_table_from_one_run(folder, tmp_path):
    events = tmp_path / "events.csv"
    done = run(
        [
            str(folder),
            "-f",
            "audacity",
            "--output-dir",
            str(tmp_path / "tracks"),
            "-o",
            str(events),
            "--window",
            "2",
            "--hop",
            "1",
            "-t",
            "0.2",
            *FAST,
        ]
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "tracks").rglob("*.txt")) == ["a.labels.txt", "b.labels.txt"]
    assert next(csv.reader(events.open())) == ["path", "start", "end", "label", "mid", "index", "peak", "mean"]


@pytest.mark.parametrize(
    "args",
    [
        ["-o", "x.csv", "-o", "./x.csv"],
        ["-f", "csv", "-o", "x.csv", "-o", "y.jsonl"],
        ["-o", "x.csv", "-o", "/dev/stdout", "--resume"],  # (several -o resume, each a file: not a stream)
        ["--wide", "-o", "x.jsonl"],
        ["--wide", "--timeline", "-o", "x.csv"],
    ],
)
def test_outputs_that_cannot_work_fail_before_the_model_loads(folder, tmp_path, args):
    done = run([str(folder), *args, "--model", "dymn20_as"], cwd=tmp_path)  # (not cached: a load would fail otherwise)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("dymn-tag: error: ") and "download" not in done.stderr
    assert not list(tmp_path.iterdir())


def test_wide_table_has_a_row_per_input_and_a_column_per_label_for_pandas(folder, tmp_path):
    wide_csv, wide_parquet, long_jsonl = tmp_path / "w.csv", tmp_path / "w.parquet", tmp_path / "l.jsonl"
    done = run([str(folder), "--wide", "-o", str(wide_csv), "-o", str(wide_parquet), *FAST])
    assert done.returncode == 0, done.stderr
    names = [c.name for c in audioset_classes()]
    for frame in (pd.read_csv(wide_csv), pd.read_parquet(wide_parquet)):
        assert list(frame.columns) == ["path", "duration", *names]
        assert sorted(frame["path"]) == sorted(str(folder / n) for n in ("a.wav", "b.flac"))
        assert frame["duration"].tolist() == pytest.approx([3.0, 12.0])
        assert all(frame[name].dtype == np.float64 for name in names)
    # The same scores as the long form, every one of the 527.
    assert run([str(folder), "--top", "all", "-o", str(long_jsonl), *FAST]).returncode == 0
    frame = pd.read_parquet(wide_parquet).set_index("path")
    for record in map(json.loads, long_jsonl.read_text().splitlines()):
        if "labels" in record:
            assert {x["label"]: x["score"] for x in record["labels"]} == frame.loc[record["path"], names].to_dict()


def test_wide_table_of_a_label_selection_on_stdout(folder):
    done = run([str(folder), "--wide", "--labels", "Dog", *FAST])  # (a pipe: CSV, not JSON Lines)
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(io.StringIO(done.stdout))
    assert list(frame.columns)[:3] == ["path", "duration", "Dog"] and "Speech" not in frame.columns
    assert len(frame) == 2


def test_events_keep_the_top_labels_by_peak_and_raven_spans_the_files_own_band(tmp_path):
    clip = gated_tone(tmp_path / "walk.wav", seconds=16.0, rate=16_000)
    common = [str(clip), "--window", "2", "--hop", "1", "-t", "0.05", *FAST]
    everything = run([*common, "--events", "-f", "json", "--top", "all"])
    assert everything.returncode == 0, everything.stderr
    found = json.loads(everything.stdout)["files"][0]["events"]
    peaks: dict[str, float] = {}
    for e in found:
        peaks[e["label"]] = max(peaks.get(e["label"], 0.0), e["peak"])
    assert len(peaks) > 2
    best = sorted(peaks, key=lambda label: -peaks[label])[:2]
    two = json.loads(run([*common, "--events", "-f", "json", "--top", "2"]).stdout)["files"][0]["events"]
    assert {e["label"] for e in two} == set(best)
    assert two == [e for e in found if e["label"] in best]
    done = run([*common, "-f", "raven", "--top", "2", "--output-dir", str(tmp_path / "raven")])
    assert done.returncode == 0, done.stderr
    [table] = (tmp_path / "raven").rglob("walk.Table.1.selections.txt")  # (the input's path, mirrored)
    rows = list(csv.DictReader(table.open(), delimiter="\t"))
    assert rows and {r["High Freq (Hz)"] for r in rows} == {"8000.0"}  # a 16 kHz file: its Nyquist, not 16 kHz
    assert {r["Label"] for r in rows} == set(best)
