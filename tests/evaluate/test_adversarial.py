"""`dymn-tag evaluate` on results and truth beyond the ordinary: each case one that once gave a wrong
figure, a misleading line or a run that took minutes. Real runs of `dymn-tag` in a subprocess, on the
outputs of the random-weight dymn04 test checkpoint."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from dymn_cli.errors import UsageError
from dymn_cli.evaluate.evaluation import evaluate as evaluate_api
from tests.audio_factory import tone
from tests.evaluate.runs import evaluate, one_line
from tests.permissions import mode_respecting_prefix
from tests.support import DYMN04_WEIGHTS, DYMN_TAG, SAFETY_NET, dymn_tag

pytestmark = pytest.mark.slow

CLIPS = {"cat": ["a", "b", "c"], "dog": ["d", "e", "f"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Six tones in class folders, tagged into every layout (mean and max aggregates), and a truth CSV."""
    root = tmp_path_factory.mktemp("adversarial")
    for n, (label, name) in enumerate((label, name) for label, names in CLIPS.items() for name in names):
        tone(root / "clips" / label / f"{name}.wav", freq=200 + 150 * n, seconds=2.0, noise=0.1 * n, seed=n)
    common = ["clips", "--weights", str(DYMN04_WEIGHTS), "-q", "--window", "1", "--hop", "1", "-j", "0", "--top", "all"]
    for extra in (
        ["-o", "r.jsonl", "-o", "r.csv"],
        ["--timeline", "-o", "tl.jsonl", "-o", "tl.csv", "-o", "tl.parquet"],
        ["--timeline", "--aggregate", "max", "-o", "tlmax.jsonl", "-o", "tlmax.csv", "-o", "tlmax.parquet"],
    ):
        done = dymn_tag([*common, *extra], cwd=root, timeout=SAFETY_NET)
        assert done.returncode == 0, done.stderr.decode()
    rows = [f"clips/{label}/{name}.wav,{label.title()}\n" for label, names in CLIPS.items() for name in names]
    (root / "truth.csv").write_text("path,label\n" + "".join(rows))
    return root


def report(run: Path, *args: str) -> dict:
    return json.loads(evaluate(run, *args, "-f", "json").stdout)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_many_inputs_of_one_file_name_all_match(run, tmp_path):
    # Matching once resolved every same-named result again for every truth entry: 4000 inputs named
    # `*/clip.wav` took a minute (seconds now). Here only that each finds its own result: speed is
    # no test's to judge (a busy machine would fail it).
    record = records(run / "r.jsonl")[0]
    n = 4000
    with open(tmp_path / "many.jsonl", "w") as out, open(tmp_path / "many.csv", "w") as truth:
        truth.write("path,label\n")
        for i in range(n):
            labels = [{"label": "Cat", "mid": "/m/01yrx", "index": 81, "score": (i % 97) / 97}]
            out.write(json.dumps({**record, "path": f"set/{i}/clip.wav", "labels": labels}) + "\n")
            truth.write(f"set/{i}/clip.wav,{'Cat' if i % 3 else 'Dog'}\n")
    found = json.loads(evaluate(run, str(tmp_path / "many.jsonl"), "--truth", str(tmp_path / "many.csv")).stdout)
    assert found["n_inputs"] == n


def test_truth_that_only_matches_ambiguously_says_so(run, tmp_path):
    record = records(run / "r.jsonl")[0]
    (tmp_path / "two.jsonl").write_text("".join(json.dumps({**record, "path": f"{d}/x.wav"}) + "\n" for d in "ab"))
    (tmp_path / "t.csv").write_text("x.wav,Cat\n")
    done = evaluate(run, str(tmp_path / "two.jsonl"), "--truth", str(tmp_path / "t.csv"), expect=2)
    one_line(done, "several", "'x.wav'")


def test_scores_outside_0_to_1_are_refused_in_every_layout(run, tmp_path):
    record = records(run / "r.jsonl")[0]
    for bad in (-0.5, 7.0):
        labels = [{**label, "score": bad} for label in record["labels"]]
        (tmp_path / "bad.jsonl").write_text(json.dumps({**record, "labels": labels}) + "\n")
        one_line(evaluate(run, str(tmp_path / "bad.jsonl"), "--truth", "truth.csv", expect=2), "bad.jsonl", "from 0 to 1")
        lines = (run / "r.csv").read_text().splitlines()
        lines[1] = ",".join([*lines[1].split(",")[:-1], str(bad)])
        (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
        one_line(evaluate(run, str(tmp_path / "bad.csv"), "--truth", "truth.csv", expect=2), "bad.csv", "row 2", "from 0 to 1")


def test_a_table_saved_with_a_byte_order_mark_reads_alike(run, tmp_path):
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (run / "r.csv").read_bytes().replace(b"\n", b"\r\n"))
    assert report(run, str(tmp_path / "bom.csv"), "--truth", "truth.csv") == report(run, "r.jsonl", "--truth", "truth.csv")


def test_a_timeline_table_scores_each_clip_as_its_run_did(run):
    # A timeline table holds windows only: its clip scores once all counted as missing (0), and the
    # figures came out wrong with a warning about a --top cut that never happened.
    for stem in ("tl", "tlmax"):
        expected = report(run, f"{stem}.jsonl", "--truth", "truth.csv")
        for suffix in (".csv", ".parquet"):
            found = report(run, f"{stem}{suffix}", "--truth", "truth.csv")
            assert found["missing_scores"] == 0 and not found["warnings"]
            assert found["mAP"] == expected["mAP"] and found["classes"] == expected["classes"], (stem, suffix)
    assert report(run, "tl.csv", "--truth", "truth.csv")["classes"] != report(run, "tlmax.csv", "--truth", "truth.csv")["classes"]


def test_results_of_two_models_are_refused(run, tmp_path):
    lines = records(run / "r.jsonl")
    (tmp_path / "one.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines[:3]))
    (tmp_path / "two.jsonl").write_text(
        "".join(json.dumps({**r, "model": "dymn10_as@sha256:0123456789ab"}) + "\n" for r in lines[3:])
    )
    done = evaluate(run, str(tmp_path / "one.jsonl"), str(tmp_path / "two.jsonl"), "--truth", "truth.csv", expect=2)
    one_line(done, "two.jsonl", "dymn10_as", "another model")


def test_the_api_takes_one_path_as_text(run, monkeypatch):
    monkeypatch.chdir(run)
    assert evaluate_api("r.jsonl", "truth.csv").inputs == evaluate_api([Path("r.jsonl")], [Path("truth.csv")]).inputs
    with pytest.raises(UsageError, match="no results given"):
        evaluate_api([], "truth.csv")


@pytest.mark.parametrize(
    ("truth", "words"),
    [
        ("filename,label\nclips/cat/a.wav,Cat\n", ("t.csv:1", "'filename,label'", "path,label")),
        ("file,labels\nclips/cat/a.wav,Cat\n", ("t.csv:1", "'file,labels'")),
        ("label,path\nCat,clips/cat/a.wav\n", ("t.csv:1", "'label,path'")),
        ("path;label\nclips/cat/a.wav;Cat\n", ("t.csv:1", "semicolons", "commas")),
        ("clips/cat/a.wav\tCat\n", ("t.csv:1", "tabs", "commas")),
    ],
)
def test_a_truth_csv_of_another_layout_is_named_as_such(run, tmp_path, truth, words):
    # These once read their header as a row, and blamed a label 'label' or 'labels' for not being a class.
    (tmp_path / "t.csv").write_text(truth)
    one_line(evaluate(run, "r.jsonl", "--truth", str(tmp_path / "t.csv"), expect=2), *words)


def test_segment_rows_without_audiosets_comment_lines_read_alike(run, tmp_path):
    ids = ["-0DLPzsiXXE", "--4gqARaEJE", "_1woPC5HWSg", "-0RWZT-miFs", "abcdefghijk", "Zz_-9876543"]
    lines = records(run / "r.jsonl")
    renamed = [{**r, "path": f"eval/Y{ytid}_30.000_40.000.wav"} for r, ytid in zip(lines, ids)]
    (tmp_path / "yt.jsonl").write_text("".join(json.dumps(r) + "\n" for r in renamed))
    mids = ["/m/01yrx"] * 3 + ["/m/0bt9lr"] * 3
    rows = "".join(f'{ytid}, 30.000, 40.000, "{mid},/m/068hy"\n' for ytid, mid in zip(ids, mids))
    (tmp_path / "plain.csv").write_text(rows)
    (tmp_path / "eval_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n# YTID, start_seconds, end_seconds, positive_labels\n" + rows
    )
    plain = report(run, str(tmp_path / "yt.jsonl"), "--truth", str(tmp_path / "plain.csv"))
    assert plain == report(run, str(tmp_path / "yt.jsonl"), "--truth", str(tmp_path / "eval_segments.csv"))
    assert plain["n_inputs"] == 6 and not plain["warnings"]


def test_results_without_any_score_are_named_not_the_truth(run, tmp_path):
    (tmp_path / "none.jsonl").write_text("".join(json.dumps({**r, "labels": []}) + "\n" for r in records(run / "r.jsonl")))
    one_line(
        evaluate(run, str(tmp_path / "none.jsonl"), "--truth", "truth.csv", expect=2), "none.jsonl", "no scores", "--top all"
    )


def test_truth_paths_with_commas_quotes_and_line_breaks_match(run, tmp_path):
    names = ["a, b é.wav", "new\nline.wav", 'say "hi".wav', "plain.wav"]
    lines = records(run / "r.jsonl")
    (tmp_path / "odd.jsonl").write_text("".join(json.dumps({**r, "path": f"odd/{n}"}) + "\n" for r, n in zip(lines, names)))
    with open(tmp_path / "odd.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "label"])
        writer.writerows([(f"odd/{name}", label) for name, label in zip(names, ["Cat", "Cat", "Dog", "Dog"])])
    found = report(run, str(tmp_path / "odd.jsonl"), "--truth", str(tmp_path / "odd.csv"))
    assert found["n_inputs"] == 4 and not found["warnings"]


def test_unreadable_results_and_an_unsearchable_plot_folder_end_in_one_line(run, tmp_path):
    # An unreadable RESULTS path crashed the usage message (a Typer argument without human_readable_name),
    # and --plot under a folder that cannot be searched raised PermissionError from Path.exists.
    prefix = mode_respecting_prefix()
    if prefix is None:
        pytest.skip("cannot run a process here for which file modes count")
    locked, closed = tmp_path / "locked.jsonl", tmp_path / "closed"
    locked.write_bytes((run / "r.jsonl").read_bytes())
    closed.mkdir()
    cases = [
        ([str(locked), "--truth", "truth.csv"], ("RESULTS", "locked.jsonl", "not readable")),
        (["r.jsonl", "--truth", "truth.csv", "--plot", str(closed / "plots")], ("--plot", "permission denied")),
    ]
    locked.chmod(0)
    closed.chmod(0)
    try:
        for args, words in cases:
            done = subprocess.run([*prefix, DYMN_TAG, "evaluate", *args], cwd=run, capture_output=True, timeout=SAFETY_NET)
            assert done.returncode == 2, done.stderr.decode()
            one_line(done, *words)
    finally:
        locked.chmod(0o600)
        closed.chmod(0o700)


def test_a_live_streams_records_are_named_as_such(run, tmp_path):
    clip = (run / "clips" / "cat" / "a.wav").read_bytes()
    live = subprocess.run(
        [DYMN_TAG, "--live", "-", "--weights", str(DYMN04_WEIGHTS), "--window", "1", "--hop", "1", "-f", "jsonl"],
        input=clip,
        capture_output=True,
        timeout=SAFETY_NET,
    )
    assert live.returncode == 0, live.stderr.decode()
    (tmp_path / "live.jsonl").write_bytes(live.stdout)
    one_line(evaluate(run, str(tmp_path / "live.jsonl"), "--truth", "truth.csv", expect=2), "live.jsonl", "a live stream")


@pytest.mark.parametrize("given", ["r.jsonl", "r.csv", "tl.parquet"])
def test_results_given_as_truth_are_named_as_results(run, given):
    one_line(evaluate(run, "r.jsonl", "--truth", given, expect=2), given, "give it as RESULTS")


def test_files_with_no_label_are_negatives_that_count_false_positives(run, tmp_path):
    """`path,` (no label) and an empty Audacity track: a file with none of the classes."""
    truth = (run / "truth.csv").read_text().replace("clips/dog/f.wav,Dog", "clips/dog/f.wav,")
    (tmp_path / "negative.csv").write_text(truth)
    without = report(run, "r.jsonl", "--truth", "truth.csv", "--threshold", "0")
    negative = report(run, "r.jsonl", "--truth", str(tmp_path / "negative.csv"), "--threshold", "0")
    assert negative["n_inputs"] == without["n_inputs"] == 6  # (the negative file is scored, not left out)
    counts = without["at_threshold"], negative["at_threshold"]
    assert counts[1]["false_negatives"] == counts[0]["false_negatives"] == 0  # (threshold 0: everything positive)
    assert counts[1]["false_positives"] == counts[0]["false_positives"] + 1  # (f.wav was a true Dog, now a false one)
    tracks = tmp_path / "tracks"
    tracks.mkdir()
    (tracks / "a.txt").write_text("0.0\t1.0\tCat\n")
    (tracks / "f.txt").write_text("")
    found = report(run, "r.jsonl", "--truth", str(tracks))
    assert found["n_inputs"] == 2 and [c["positives"] for c in found["classes"]] == [1]


@pytest.mark.parametrize("name, first", [("report.csv", "label,mid,positives,ap,auc,best_threshold,best_f1"), ("report.txt", "")])
def test_the_reports_format_follows_its_extension(run, tmp_path, name, first):
    evaluate(run, "r.jsonl", "--truth", "truth.csv", "-o", str(tmp_path / name))
    text = (tmp_path / name).read_text()
    if name.endswith(".csv"):
        rows = list(csv.DictReader(text.splitlines()))
        assert text.splitlines()[0] == first and {row["label"] for row in rows} == {"Cat", "Dog"}
        assert json.loads(evaluate(run, "r.jsonl", "--truth", "truth.csv", "-o", str(tmp_path / "r.json")).stdout or "{}") == {}
        assert {c["label"] for c in json.loads((tmp_path / "r.json").read_text())["classes"]} == {"Cat", "Dog"}
    else:
        assert "classes by AP" in text and not text.lstrip().startswith("{")


def test_a_picture_name_for_plot_is_refused_before_any_work(run, tmp_path):
    one_line(evaluate(run, "r.jsonl", "--truth", "truth.csv", "--plot", str(tmp_path / "pr.png"), expect=2), "name a folder")
    assert not (tmp_path / "pr.png").exists()


def test_saved_thresholds_are_scored_again_with_thresholds(run, tmp_path):
    saved = tmp_path / "best.csv"
    done = evaluate(run, "r.jsonl", "--truth", "truth.csv", "--save-thresholds", str(saved), "-f", "json")
    assert f"{saved}: the best-F1 thresholds of 2 classes" in done.stderr.decode()
    first = json.loads(done.stdout)
    again = report(run, "r.jsonl", "--truth", "truth.csv", "--thresholds", str(saved))
    assert again["thresholds_file"] == str(saved) and again["at_thresholds"] == first["at_best_thresholds"]
    assert first["at_thresholds"] is None
    one_line(evaluate(run, "r.jsonl", "--truth", "truth.csv", "--thresholds", str(saved), "-o", str(saved), expect=2), "best.csv")


def test_a_misspelt_class_folder_gets_a_suggestion(run, tmp_path):
    for label in ("Dgo", "Cat"):
        (tmp_path / "folders" / label).mkdir(parents=True)
    (tmp_path / "folders" / "Dgo" / "d.wav").symlink_to(run / "clips" / "dog" / "d.wav")
    (tmp_path / "folders" / "Cat" / "a.wav").symlink_to(run / "clips" / "cat" / "a.wav")
    one_line(evaluate(run, "r.jsonl", "--truth", str(tmp_path / "folders"), expect=2), "'Dgo'", "did you mean 'Dog'?")
