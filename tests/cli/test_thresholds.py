"""`dymn-tag --thresholds FILE`, the real command: each class's own threshold in top lists, wide tables,
events and live streams; classes without a row keep --threshold; a bad file is one line, exit 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.audio_factory import noise, write_audio
from tests.support import SAFETY_NET, dymn_tag

pytestmark = pytest.mark.slow  # every test here starts dymn-tag


@pytest.fixture(scope="module")
def weights(golden_dir) -> str:
    return str(golden_dir / "dymn04_seed0.pt")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    write_audio(path, noise(4.0, amplitude=0.03, seed=5), 32_000)  # (quiet noise: every score strictly between 0 and 1)
    return path


@pytest.fixture(scope="module")
def scores(clip, weights) -> dict[str, tuple[str, float]]:
    """label -> (mid, clip score), from a run without any threshold."""
    done = dymn_tag([str(clip), "--weights", weights, "--top", "all", "-f", "csv", "--window", "2", "--hop", "1"])
    assert done.returncode == 0, done.stderr
    return {row["label"]: (row["mid"], float(row["score"])) for row in csv.DictReader(done.stdout.decode().splitlines())}


def write_thresholds(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["label", "mid", "threshold"])
        writer.writerows(rows)
    return path


def ranked(scores: dict[str, tuple[str, float]]) -> list[str]:
    return sorted(scores, key=lambda label: -scores[label][1])


def test_top_list_uses_each_listed_class_threshold_and_threshold_for_the_rest(clip, weights, scores, tmp_path):
    order = ranked(scores)
    cut = (scores[order[4]][1] + scores[order[5]][1]) / 2  # --threshold keeps the five best
    first, eighth = order[0], order[7]
    table = write_thresholds(
        tmp_path / "t.csv",
        [("", scores[first][0], (scores[first][1] + 1) / 2), (eighth, "", scores[eighth][1] / 2)],  # by mid; by label
    )
    args = [str(clip), "--weights", weights, "--top", "all", "-f", "csv", "--window", "2", "--hop", "1"]
    done = dymn_tag([*args, "--threshold", str(cut), "--thresholds", str(table)])
    assert done.returncode == 0, done.stderr
    labels = [row["label"] for row in csv.DictReader(done.stdout.decode().splitlines())]
    assert labels == [*order[1:5], eighth]
    done = dymn_tag([*args, "--thresholds", str(table)])  # no --threshold: unlisted classes are not cut
    labels = [row["label"] for row in csv.DictReader(done.stdout.decode().splitlines())]
    assert len(labels) == 526 and first not in labels


def test_wide_table_leaves_scores_under_their_threshold_empty(clip, weights, scores, tmp_path):
    pandas = pytest.importorskip("pandas")
    order = ranked(scores)
    cut = (scores[order[2]][1] + scores[order[3]][1]) / 2
    table = write_thresholds(tmp_path / "t.csv", [(order[0], "", 1.0), (order[-1], "", 0.0)])
    target = tmp_path / "wide.csv"
    args = [str(clip), "--weights", weights, "--wide", "-o", str(target), "--window", "2", "--hop", "1"]
    done = dymn_tag([*args, "--threshold", str(cut), "--thresholds", str(table)])
    assert done.returncode == 0, done.stderr
    frame = pandas.read_csv(target)
    kept = [label for label in frame.columns[2:] if not np.isnan(frame[label][0])]
    assert kept == sorted([order[1], order[2], order[-1]], key=lambda label: list(frame.columns).index(label))
    assert len(frame.columns) == 2 + 527  # (every class keeps its column)


def test_events_and_audacity_labels_cut_each_class_at_its_own_threshold(clip, weights, scores, tmp_path):
    order = ranked(scores)
    quiet = order[-1]  # the lowest-scoring class: at threshold 0 it is active over the whole clip
    table = write_thresholds(tmp_path / "t.csv", [(quiet, "", 0.0)])
    args = [str(clip), "--weights", weights, "--events", "-f", "csv", "--window", "2", "--hop", "1", "--top", "all"]
    done = dymn_tag([*args, "--threshold", "1", "--thresholds", str(table)])
    assert done.returncode == 0, done.stderr
    events = list(csv.DictReader(done.stdout.decode().splitlines()))
    ours = [e for e in events if e["label"] == quiet]
    assert [(float(e["start"]), float(e["end"])) for e in ours] == [(0.0, 4.0)]
    assert all(float(e["peak"]) >= 1.0 for e in events if e["label"] != quiet)  # the rest: at --threshold 1
    labels = tmp_path / "labels"
    done = dymn_tag(
        [str(clip), "--weights", weights, "-f", "audacity", "--output-dir", str(labels)]
        + args[6:]
        + ["--threshold", "1", "--thresholds", str(table)]
    )
    assert done.returncode == 0, done.stderr
    lines = next(labels.rglob("clip.labels.txt")).read_text().splitlines()  # (the input's folders, mirrored)
    assert any(line.split("\t")[2] == quiet for line in lines)


def test_live_windows_and_events(weights, scores, tmp_path):
    quiet = ranked(scores)[-1]
    table = write_thresholds(tmp_path / "t.csv", [(quiet, "", 0.0)])
    pcm = (noise(3.0, amplitude=0.03, seed=5)[:, 0] * 32767).astype("<i2").tobytes()
    done = dymn_tag(
        ["--live", "-", "--pcm", "s16le:32000:1", "--weights", weights, "--window", "1", "--hop", "1"]
        + ["--top", "all", "--threshold", "1", "--thresholds", str(table), "--events"],
        stdin=pcm,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    windows = [r for r in records if r["type"] == "window"]
    assert len(windows) == 3
    for window in windows:
        assert quiet in [label["label"] for label in window["labels"]]
        assert all(label["score"] >= 1.0 for label in window["labels"] if label["label"] != quiet)
    events = [(r["start"], r["end"]) for r in records if r["type"] == "event" and r["label"] == quiet]
    assert events == [(0.0, 3.0)]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"label,mid,threshold\nDog,,1.5\n", "line 2: threshold 1.5 is not between 0 and 1"),
        (b"label,mid,threshold\nDgo,,0.5\n", "line 2: 'Dgo' is not one of this run's classes (did you mean 'Dog'?)"),
        (b"label,mid,threshold\nDog,,0.5\n,/m/0bt9lr,0.2\n", "line 3: 'Dog' again (first on line 2)"),
        (b"\x00\x01binary junk", "binary data"),
    ],
)
def test_a_bad_thresholds_file_is_one_line_and_exit_2_before_any_work(clip, weights, tmp_path, content, reason):
    table = tmp_path / "t.csv"
    table.write_bytes(content)
    done = dymn_tag([str(clip), "--weights", weights, "--thresholds", str(table)])
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and str(table) in lines[0] and reason in lines[0], lines
    assert b"Traceback" not in done.stderr and done.stdout == b""


def test_missing_and_folder_thresholds(clip, weights, tmp_path):
    for path, reason in ((tmp_path / "none.csv", "no such file"), (tmp_path, "a folder")):
        done = dymn_tag([str(clip), "--weights", weights, "--thresholds", str(path)])
        assert done.returncode == 2 and reason in done.stderr.decode(), done.stderr


def test_the_file_is_read_before_torch_is_imported(clip, weights, tmp_path):
    table = tmp_path / "t.csv"
    table.write_bytes(b"label,mid,threshold\nDog,,high\n")
    script = (
        "import sys\n"
        "from dymn_cli.cli.main import main\n"
        f"sys.argv = ['dymn-tag', {str(clip)!r}, '--weights', {weights!r}, '--thresholds', {str(table)!r}]\n"
        "try:\n    main()\nexcept SystemExit as done:\n    print(done.code, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=SAFETY_NET)
    assert done.stdout.decode().split() == ["2", "False"], done.stderr
