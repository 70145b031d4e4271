"""`dymn-tag evaluate`'s options against an adversary: --thresholds on other truth, the report's format
from -o's name, signals while the outputs are written, the classes marked as tagging everything, and
truth of negatives only. Real runs of `dymn-tag` in a subprocess."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import select
import signal
import subprocess
from pathlib import Path

import pytest

from tests.audio_factory import tone
from tests.evaluate.runs import evaluate, one_line
from tests.support import DYMN04_WEIGHTS, DYMN_TAG, SAFETY_NET, dymn_tag

pytestmark = pytest.mark.slow

CLIPS = {"cat": ["a", "b", "c"], "dog": ["d", "e", "f"]}
ODD_NAMES = ["=cmd|' /C calc'!A0", 'a, "quoted" b', "plain"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Six tones in class folders tagged with --top all (r.jsonl); a head's results written by hand
    (head.jsonl, classes named with commas, quotes and a spreadsheet formula) and their truth."""
    root = tmp_path_factory.mktemp("options")
    for n, (label, name) in enumerate((label, name) for label, names in CLIPS.items() for name in names):
        tone(root / "clips" / label / f"{name}.wav", freq=200 + 150 * n, seconds=2.0, noise=0.1 * n, seed=n)
    common = ["clips", "--weights", str(DYMN04_WEIGHTS), "-q", "--window", "1", "--hop", "1", "-j", "0", "--top", "all"]
    done = dymn_tag([*common, "-o", "r.jsonl"], cwd=root, timeout=SAFETY_NET)
    assert done.returncode == 0, done.stderr.decode()
    rows = [f"clips/{label}/{name}.wav,{label.title()}\n" for label, names in CLIPS.items() for name in names]
    (root / "truth.csv").write_text("path,label\n" + "".join(rows))
    head = [
        {
            "path": f"h{i}.wav",
            "labels": [{"label": n, "mid": f"head:{n}", "score": (7 * i + 3 * k) % 10 / 10} for k, n in enumerate(ODD_NAMES)],
        }
        for i in range(6)
    ]
    (root / "head.jsonl").write_text("".join(json.dumps(record) + "\n" for record in head))
    with open(root / "head_truth.csv", "w", newline="") as out:
        csv.writer(out).writerows([["path", "label"], *([f"h{i}.wav", ODD_NAMES[i % 3]] for i in range(6))])
    return root


def test_thresholds_saved_on_more_classes_score_on_truth_that_names_fewer(run, tmp_path):
    # The file was matched against the truth's classes only: thresholds saved on Cat and Dog, scored
    # again on truth of Cat alone (the README's "on other truth"), ended in "not one of this run's classes".
    saved = tmp_path / "best.csv"
    evaluate(run, "r.jsonl", "--truth", "clips", "--save-thresholds", str(saved), "-o", str(tmp_path / "first.json"))
    assert {row["label"] for row in csv.DictReader(saved.open())} == {"Cat", "Dog"}
    (tmp_path / "cats.csv").write_text("".join(f"clips/cat/{name}.wav,Cat\n" for name in CLIPS["cat"]) + "clips/dog/d.wav,\n")
    found = json.loads(
        evaluate(run, "r.jsonl", "--truth", str(tmp_path / "cats.csv"), "--thresholds", str(saved), "-f", "json").stdout
    )
    assert found["at_thresholds"] is not None and found["thresholds_file"] == str(saved)
    (tmp_path / "speech.csv").write_text("label,mid,threshold\nSpeech,/m/09x0r,0.3\n")
    done = evaluate(run, "r.jsonl", "--truth", "truth.csv", "--thresholds", str(tmp_path / "speech.csv"), "-f", "json")
    found = json.loads(done.stdout)
    assert found["at_thresholds"] == found["at_threshold"]
    assert "speech.csv names none of the truth's classes" in done.stderr.decode()
    (tmp_path / "other.csv").write_text("label,mid,threshold\nFoo,head:Foo,0.3\n")  # (no class of these results)
    one_line(evaluate(run, "r.jsonl", "--truth", "truth.csv", "--thresholds", str(tmp_path / "other.csv"), expect=2), "head:Foo")


@pytest.mark.parametrize("name", ["report.parquet", "report.jsonl", "report"])  # (`-o -`: tests/cli/test_dash_output.py)
def test_a_report_named_for_another_format_is_refused_before_any_work(run, tmp_path, name):
    # It was written as indented JSON: a report.parquet that no Parquet reader opens, a report.jsonl of many lines.
    done = dymn_tag(["evaluate", str(run / "r.jsonl"), "--truth", str(run / "truth.csv"), "-o", name], cwd=tmp_path)
    assert done.returncode == 2
    one_line(done, "cannot tell the report's format", ".json, .csv or .txt", "--format")
    assert not (tmp_path / name).exists()
    done = dymn_tag(["evaluate", str(run / "r.jsonl"), "--truth", str(run / "truth.csv"), "-o", name, "-f", "json"], cwd=tmp_path)
    assert done.returncode == 0 and json.loads((tmp_path / name).read_text())["n_inputs"] == 6


def test_the_reports_format_from_an_upper_case_extension_and_an_explicit_format_wins(run, tmp_path):
    evaluate(run, "r.jsonl", "--truth", "truth.csv", "-o", str(tmp_path / "R.CSV"))
    assert (tmp_path / "R.CSV").read_text().startswith("label,mid,positives,ap,auc,best_threshold,best_f1\n")
    evaluate(run, "r.jsonl", "--truth", "truth.csv", "-o", str(tmp_path / "r.csv"), "-f", "json")
    assert json.loads((tmp_path / "r.csv").read_text())["n_inputs"] == 6


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_the_report_is_written_leaves_no_other_output(run, tmp_path, sig, code):
    # The thresholds were written before the report and the pictures drawn between: a signal while they
    # were drawn (a second or more) left a thresholds file beside no report. Here the report goes to a
    # FIFO whose small buffer holds the run in its write: everything has been made by then.
    mids = [entry["mid"] for entry in json.loads((run / "r.jsonl").read_text().splitlines()[0])["labels"]][:120]
    paths = [f"clips/{label}/{name}.wav" for label, names in CLIPS.items() for name in names]
    (tmp_path / "many.csv").write_text("".join(f"{paths[k % 6]},{mid}\n" for k, mid in enumerate(mids)))
    fifo, saved = tmp_path / "report.json", tmp_path / "best.csv"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, 4096)  # (the report, some 20 kB, fills it)
        args = ["evaluate", "r.jsonl", "--truth", str(tmp_path / "many.csv"), "-o", str(fifo), "--save-thresholds", str(saved)]
        with subprocess.Popen([DYMN_TAG, *args], cwd=run, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
            assert select.select([reader], [], [], SAFETY_NET)[0], "the report never began"
            process.send_signal(sig)
            _, err = process.communicate(timeout=SAFETY_NET)
    finally:
        os.close(reader)
    assert process.returncode == code, err.decode()
    assert not saved.exists() and not list(tmp_path.glob(".*best*")), list(tmp_path.iterdir())


def test_a_class_that_every_input_has_is_not_marked_as_tagging_everything(run, tmp_path):
    # Its threshold, the lowest score of inputs that are all positives, was marked '*' ("the scores do not
    # separate this class") and warned of: with no negative there is nothing to separate.
    (tmp_path / "cats.csv").write_text("".join(f"clips/cat/{name}.wav,Cat\n" for name in CLIPS["cat"]))
    done = evaluate(
        run,
        "r.jsonl",
        "--truth",
        str(tmp_path / "cats.csv"),
        "-o",
        str(tmp_path / "r.txt"),
        "--save-thresholds",
        str(tmp_path / "t.csv"),
    )
    assert "*" not in (tmp_path / "r.txt").read_text() and "positive" not in done.stderr.decode(), done.stderr.decode()


def test_one_class_that_tags_everything_is_named_in_the_singular(run, tmp_path):
    # "1 class reach their best F1 ... tags every input with them".
    records = [
        {
            "path": f"x{i}.wav",
            "labels": [{"label": "A", "mid": "head:A", "score": 0.2}, {"label": "B", "mid": "head:B", "score": i / 4}],
        }
        for i in range(4)
    ]
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "x.csv").write_text("x0.wav,A\nx1.wav,A\nx2.wav,\nx3.wav,B\n")
    done = evaluate(tmp_path, "x.jsonl", "--truth", "x.csv", "--save-thresholds", "t.csv", "-o", "r.txt")
    assert (
        "1 class reaches its best F1 only by calling every input positive: its threshold in t.csv tags every input with it (A)"
        in done.stderr.decode()
    )
    assert "0.2000 *" in (tmp_path / "r.txt").read_text()


def test_truth_of_negatives_only_says_so(run, tmp_path):
    (tmp_path / "none.csv").write_text("path,label\nclips/cat/a.wav,\nclips/dog/d.wav,\n")
    one_line(evaluate(run, "r.jsonl", "--truth", str(tmp_path / "none.csv"), expect=2), "only files with no label (2 negatives)")


def test_a_heads_odd_class_names_survive_the_csv_report_and_saved_thresholds(run, tmp_path):
    # Commas, quotes and a leading '=' are kept as they are (as tagging's CSV writers keep them): quoted
    # where CSV needs it, read back by any CSV reader, and the saved thresholds reproduce the best F1s.
    saved = tmp_path / "best.csv"
    evaluate(run, "head.jsonl", "--truth", "head_truth.csv", "-o", str(tmp_path / "r.csv"), "--save-thresholds", str(saved))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert sorted(row["label"] for row in rows) == sorted(ODD_NAMES) and all(row["mid"] == "head:" + row["label"] for row in rows)
    found = json.loads(evaluate(run, "head.jsonl", "--truth", "head_truth.csv", "--thresholds", str(saved), "-f", "json").stdout)
    assert found["at_thresholds"] == found["at_best_thresholds"]
