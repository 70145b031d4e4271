"""`dymn-tag evaluate` in a subprocess, on the outputs of real `dymn-tag` runs (the random-weight dymn04
test checkpoint on generated tones) in every results format, against every kind of truth.

The clips are named with YouTube IDs (`Y<id>_0.000.wav`) in class folders (`cat/`, `dog/`), so one set of
results matches class folders, a path CSV, an AudioSet segment CSV, and Raven and Audacity files.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from tests.audio_factory import tone
from tests.evaluate.runs import evaluate
from tests.support import DYMN04_WEIGHTS, DYMN_TAG, SAFETY_NET, dymn_tag

pytestmark = pytest.mark.slow

IDS = ["--4gqARaEJE", "-0RWZT-miFs", "-1nilez17Dg", "-3hnIzZPjsg", "_1woPC5HWSg", "A0123456789"]
CLASSES = ["cat", "dog", "cat", "dog", "cat", "dog"]
FIGURES = ("mAP", "auc", "d_prime", "lwlrap", "at_threshold", "at_best_thresholds", "n_inputs", "missing_scores")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A folder with the clips, the outputs of three real runs, and truth in every format."""
    root = tmp_path_factory.mktemp("evaluate")
    for n, (ytid, label) in enumerate(zip(IDS, CLASSES)):
        tone(root / "clips" / label / f"Y{ytid}_0.000.wav", freq=150 + 170 * n, seconds=2.0, noise=0.1 * n, seed=n)
    common = ["clips", "--weights", str(DYMN04_WEIGHTS), "-q", "--window", "1", "--hop", "1", "-j", "0"]
    runs = [
        [*common, "--top", "all", "-o", "r.jsonl", "-o", "r.csv", "-o", "r.json", "-o", "r.parquet"],
        [*common, "--wide", "-o", "w.csv", "-o", "w.parquet"],
        [
            *common,
            "--top",
            "all",
            "--timeline",
            "--events",
            "--output-dir",
            "parts",
            "--part-size",
            "4",
            "-f",
            "jsonl",
        ],
    ]
    for args in runs:
        done = dymn_tag(args, cwd=root, timeout=600)
        assert done.returncode == 0, done.stderr.decode()
    (root / "truth.csv").write_text(
        "path,label\n" + "".join(f"clips/{c}/Y{i}_0.000.wav,{c.title()}\n" for i, c in zip(IDS, CLASSES))
    )
    mids = {"cat": "/m/01yrx", "dog": "/m/0bt9lr"}
    (root / "eval_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=6, num_segs=6, num_unique_labels=2, num_positive_labels=6\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        + "".join(f'{i}, 30.000, 40.000, "{mids[c]}"\n' for i, c in zip(IDS, CLASSES))
    )
    tables = root / "tables"
    tables.mkdir()
    raven_header = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tAnnotation\n"
    for n, (ytid, label) in enumerate(zip(IDS, CLASSES)):
        stem = f"Y{ytid}_0.000"
        if n % 2:
            (tables / f"{stem}.Table.1.selections.txt").write_text(
                raven_header + f"1\tSpectrogram 1\t1\t0.0\t1.5\t0\t16000\t{label.title()}\n"
            )
        else:
            (tables / f"{stem}.labels.txt").write_text(f"0.500000\t2.000000\t{label.title()}\n\\\t100.0\t2000.0\n")
    return root


def figures(done: subprocess.CompletedProcess) -> dict:
    report = json.loads(done.stdout)
    return {key: report[key] for key in FIGURES} | {"classes": report["classes"]}


def test_the_same_figures_from_every_results_format(run):
    results = {
        name: figures(evaluate(run, name, "--truth", "clips", "-f", "json"))
        for name in ("r.jsonl", "r.json", "r.csv", "r.parquet")
    }
    wide = {name: figures(evaluate(run, name, "--truth", "clips", "-f", "json")) for name in ("w.csv", "w.parquet")}
    reference = results["r.jsonl"]
    assert reference["n_inputs"] == 6 and reference["missing_scores"] == 0
    assert [c["label"] for c in reference["classes"]] and {c["label"] for c in reference["classes"]} == {"Cat", "Dog"}
    for name, found in {**results, **wide}.items():
        assert found == reference, name
    parts = figures(evaluate(run, "parts", "--truth", "clips", "-f", "json"))
    assert parts["n_inputs"] == 6 and parts["missing_scores"] == 0
    assert 0 <= parts["mAP"] <= 1 and parts["classes"][0]["positives"] == 3


def test_records_with_provenance_and_with_the_old_header_read_alike(run, tmp_path):
    lines = [json.loads(line) for line in (run / "r.jsonl").read_text().splitlines() if line.strip()]
    records = [r for r in lines if "path" in r]
    provenance = {"model": "dymn04_seed0@0123456789ab", "settings": {"window": 1.0, "hop": 1.0}}
    (tmp_path / "new.jsonl").write_text("".join(json.dumps({**r, **provenance}) + "\n" for r in records))
    (tmp_path / "old.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [provenance, *records]))
    expected = figures(evaluate(run, "r.jsonl", "--truth", "clips", "-f", "json"))
    for name in ("new.jsonl", "old.jsonl"):
        assert figures(evaluate(run, str(tmp_path / name), "--truth", "clips", "-f", "json")) == expected


def test_every_truth_format_matches_the_results(run):
    clip = {
        truth: json.loads(evaluate(run, "r.jsonl", "--truth", truth, "-f", "json").stdout)
        for truth in ("clips", "truth.csv", "eval_segments.csv")
    }
    assert clip["clips"]["mAP"] == clip["truth.csv"]["mAP"] == clip["eval_segments.csv"]["mAP"]
    assert all(report["n_inputs"] == 6 and not report["warnings"] for report in clip.values())
    timed = json.loads(evaluate(run, "parts", "--truth", "tables", "-f", "json").stdout)
    assert timed["n_inputs"] == 6
    assert timed["segment_based"]["n_reference"] == 6 * 2  # (0.5-2.0 s and 0-1.5 s: two 1 s segments each)
    assert timed["event_based"]["n_reference"] == 6
    one = json.loads(evaluate(run, "parts", "--truth", f"tables/Y{IDS[1]}_0.000.Table.1.selections.txt", "-f", "json").stdout)
    assert one["n_inputs"] == 1 and "no truth for 5 inputs of the results" in one["warnings"][0]


def test_top_k_results_warn_and_recommend_top_all(run):
    done = evaluate(run, "parts", "--truth", "clips", "-f", "json")
    assert b"warning" not in done.stderr
    records = [json.loads(line) for line in (run / "r.jsonl").read_text().splitlines()[1:]]
    cut = run / "top3.jsonl"  # (the first record whole: the others' top 3 may hold none of the truth's classes)
    cut.write_text(
        "".join(json.dumps({**r, "labels": r["labels"][: None if n == 0 else 3]}) + "\n" for n, r in enumerate(records))
    )
    done = evaluate(run, "top3.jsonl", "--truth", "clips", "-f", "json")
    warning = done.stderr.decode()
    assert "count as the lowest score" in warning and "--top all" in warning
    assert json.loads(done.stdout)["missing_scores"] > 0
    other = {"/m/09x0r", "/m/04rlf"}  # (Speech, Music: the truth names Cat and Dog)
    cut.write_text("".join(json.dumps({**r, "labels": [x for x in r["labels"] if x["mid"] in other]}) + "\n" for r in records))
    done = evaluate(run, "top3.jsonl", "--truth", "clips", "-f", "json", expect=2)
    assert b"none of the truth's classes has a score in the results" in done.stderr
    assert done.stderr.count(b"\n") == 1 and done.stdout == b""


def test_table_thresholds_and_plots(run, tmp_path):
    done = evaluate(
        run,
        "r.parquet",
        "--truth",
        "clips",
        "-f",
        "table",
        "--save-thresholds",
        str(tmp_path / "t.csv"),
        "--plot",
        str(tmp_path / "plots"),
    )
    table = done.stdout.decode()
    assert "mAP" in table and "lwlrap" in table and "best threshold" in table
    assert table.index("mAP") < table.index("classes by AP")
    with open(tmp_path / "t.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [list(r) for r in rows][0] == ["label", "mid", "threshold"]
    assert {(r["label"], r["mid"]) for r in rows} == {("Cat", "/m/01yrx"), ("Dog", "/m/0bt9lr")}
    report = json.loads(evaluate(run, "r.parquet", "--truth", "clips", "-f", "json").stdout)
    best = {c["mid"]: c["best_threshold"] for c in report["classes"]}
    assert all(float(r["threshold"]) == pytest.approx(best[r["mid"]], abs=1e-6) for r in rows)
    for name in ("pr_curves.png", "class_ap.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = evaluate(run, "r.parquet", "--truth", "clips", "--save-thresholds", str(tmp_path / "t.csv"), "-n", expect=2)
    assert refused.stderr.decode().count("\n") == 1 and "already exists" in refused.stderr.decode()
    onto_input = evaluate(run, "r.parquet", "--truth", "clips", "--save-thresholds", "r.parquet", expect=2)
    assert "one of the inputs" in onto_input.stderr.decode()
    assert (run / "r.parquet").read_bytes()[:4] == b"PAR1"


HOSTILE_RESULTS = {
    "empty.jsonl": b"",
    "garbage.jsonl": b"\x00\xff\xfe not json\n",
    "list.jsonl": b"[1, 2, 3]\n",
    "nan.jsonl": b'{"path": "a.wav", "labels": [{"label": "Cat", "mid": "/m/01yrx", "score": NaN}]}\n',
    "string.jsonl": b'{"path": "a.wav", "labels": [{"label": "Cat", "mid": "/m/01yrx", "score": "high"}]}\n',
    "deep.json": b"[" * 100_000,
    "noheader.csv": b"a,b,c\n1,2,3\n",
    "short.csv": b"path,rank,label,mid,index,score\nclips/x.wav,1,Cat\n",
    "fake.parquet": b"PAR1 this is not parquet PAR1",
    "doc.json": b'{"model": "x", "files": "no"}',
    "audio.wav": b"RIFF",
}

HOSTILE_TRUTH = {
    "binary.csv": b"\x00\x01\x02",
    "latin1.csv": "path,label\nclips/cat/x.wav,Ch\xe4t\n".encode("latin-1"),
    "columns.csv": b"path,label,colour\nx.wav,Cat,red\n",
    "times.csv": b"path,label,start,end\nx.wav,Cat,3,1\n",
    "negative.csv": b"path,label,start,end\nx.wav,Cat,-1,1\n",
    "segments.csv": b'# YTID, start_seconds, end_seconds, positive_labels\nnot-an-id, 0, 10, "/m/01yrx"\n',
    "raven.txt": b"Selection\tBegin Time (s)\tEnd Time (s)\n1\t0\t1\n",
    "audacity.txt": b"0.0\tlater\tCat\n",
}


def test_hostile_results_end_in_one_line(run, tmp_path):
    for name, data in HOSTILE_RESULTS.items():
        (tmp_path / name).write_bytes(data)
        done = evaluate(run, str(tmp_path / name), "--truth", "clips", expect=2)
        err = done.stderr.decode()
        assert err.count("\n") == 1 and err.startswith("dymn-tag: error: ") and name in err and "Traceback" not in err, err


def test_hostile_truth_ends_in_one_line(run, tmp_path):
    for name, data in HOSTILE_TRUTH.items():
        (tmp_path / name).write_bytes(data)
        done = evaluate(run, "r.jsonl", "--truth", str(tmp_path / name), expect=2)
        err = done.stderr.decode()
        assert err.count("\n") == 1 and err.startswith("dymn-tag: error: ") and name in err and "Traceback" not in err, err


def test_unknown_labels_and_unmatched_truth_are_usage_errors(run, tmp_path):
    (tmp_path / "typo.csv").write_text("path,label\nclips/cat/x.wav,Caat\nclips/dog/y.wav,Dgo\n")
    err = evaluate(run, "r.jsonl", "--truth", str(tmp_path / "typo.csv"), expect=2).stderr.decode()
    assert err.count("\n") == 1 and "'Caat'" in err and "'Dgo'" in err and "did you mean 'Cat'" in err
    (tmp_path / "elsewhere.csv").write_text("path,label\nother/a.wav,Cat\n")
    err = evaluate(run, "r.jsonl", "--truth", str(tmp_path / "elsewhere.csv"), expect=2).stderr.decode()
    assert err.count("\n") == 1 and "matches none" in err
    (tmp_path / "partly.csv").write_text(f"path,label\nclips/cat/Y{IDS[0]}_0.000.wav,Cat\nclips/cat/missing.wav,Cat\n")
    done = evaluate(run, "r.jsonl", "--truth", str(tmp_path / "partly.csv"), "-f", "json")
    err = done.stderr.decode()
    assert "no results for 1 file of the truth" in err and "missing.wav" in err and "no truth for 5 inputs of the results" in err


def test_a_signal_while_reading_ends_with_143(run, tmp_path):
    fifo = tmp_path / "slow.jsonl"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [DYMN_TAG, "evaluate", str(fifo), "--truth", "clips"], cwd=run, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    opened = threading.Event()

    def writer():
        try:
            with open(fifo, "w") as stream:  # (returns once evaluate has opened the FIFO to read it)
                opened.set()
                stream.write((run / "r.jsonl").read_text().splitlines()[0] + "\n")
                stream.flush()
                process.wait(timeout=SAFETY_NET)
        except BrokenPipeError:  # (the signal may stop evaluate before this line reaches it)
            pass

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    assert opened.wait(timeout=SAFETY_NET)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=SAFETY_NET)
    assert process.returncode == 143 and err.decode().strip().endswith("stopped by SIGTERM"), err
    thread.join(timeout=10)
