"""The readers of results and truth, and how they are matched: every layout, and any bytes at all
ending in a `UsageError` (one line), never another exception."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dymn_cli.errors import UsageError
from dymn_cli.evaluate.evaluation import evaluate
from dymn_cli.evaluate.matching import match_inputs, resolve_labels
from dymn_cli.evaluate.results import ResultSet, read_results
from dymn_cli.evaluate.truth import PATH, STEM, YOUTUBE_ID, Span, Truth, read_truth

RECORD = {
    "path": "clips/a.wav",
    "duration": 3.0,
    "n_windows": 3,
    "labels": [
        {"label": "Cat", "mid": "/m/01yrx", "index": 81, "score": 0.75},
        {"label": "Dog", "mid": "/m/0bt9lr", "index": 74, "score": 0.25},
    ],
}
SEED_FILES = {
    ".jsonl": (json.dumps({"model": "m", "settings": {}}) + "\n" + json.dumps(RECORD) + "\n").encode(),
    ".json": json.dumps({"model": "m", "settings": {}, "files": [RECORD]}).encode(),
    ".csv": b"path,rank,label,mid,index,score\nclips/a.wav,1,Cat,/m/01yrx,81,0.75\n",
}


def mutations(seed: bytes):
    """Seed files cut, spliced with random bytes, or with bytes flipped."""
    return st.one_of(
        st.binary(max_size=300),
        st.integers(0, len(seed)).map(lambda n: seed[:n]),
        st.tuples(st.integers(0, len(seed)), st.binary(min_size=1, max_size=20)).map(
            lambda t: seed[: t[0]] + t[1] + seed[t[0] :]
        ),
        st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)).map(
            lambda t: seed[: t[0]] + bytes([t[1]]) + seed[t[0] + 1 :]
        ),
    )


@pytest.mark.parametrize("suffix", list(SEED_FILES))
def test_any_results_file_reads_or_fails_in_one_line(suffix, tmp_path):
    target = tmp_path / f"results{suffix}"

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(mutations(SEED_FILES[suffix]))
    def check(data):
        target.write_bytes(data)
        try:
            found = read_results([target])
        except UsageError as error:
            assert "\n" not in str(error) and str(target) in str(error)
        else:
            assert isinstance(found, ResultSet)

    check()


TRUTH_SEEDS = {
    "truth.csv": b"path,label,start,end\nclips/a.wav,Cat,0.5,1.5\nclips/a.wav,Dog,,\n",
    "eval_segments.csv": b'# Segments csv\n# YTID, start_seconds, end_seconds, positive_labels\n--4gqARaEJE, 0.000, 10.000, "/m/01yrx,/m/0bt9lr"\n',
    "a.Table.1.selections.txt": b"Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tAnnotation\n1\tSpectrogram 1\t1\t0.5\t1.0\tCat\n",
    "a.labels.txt": b"0.5\t1.0\tCat\n\\\t100\t2000\n",
}


@pytest.mark.parametrize("name", list(TRUTH_SEEDS))
def test_any_truth_file_reads_or_fails_in_one_line(name, tmp_path):
    target = tmp_path / name

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(mutations(TRUTH_SEEDS[name]))
    def check(data):
        target.write_bytes(data)
        try:
            read_truth([target])
        except UsageError as error:
            assert "\n" not in str(error) and str(target) in str(error) or "no labelled files" in str(error)

    check()


def test_truth_layouts(tmp_path):
    for name, data in TRUTH_SEEDS.items():
        (tmp_path / name).write_bytes(data)
    csv_truth = read_truth([tmp_path / "truth.csv"])
    assert csv_truth.kind == PATH and csv_truth.files["clips/a.wav"] == [Span("Cat", 0.5, 1.5), Span("Dog")]
    segments = read_truth([tmp_path / "eval_segments.csv"])
    assert segments.kind == YOUTUBE_ID and [s.label for s in segments.files["--4gqARaEJE"]] == ["/m/01yrx", "/m/0bt9lr"]
    assert not segments.timed  # (an AudioSet segment's times are its place in the video)
    raven = read_truth([tmp_path / "a.Table.1.selections.txt"])
    audacity = read_truth([tmp_path / "a.labels.txt"])
    assert raven.kind == audacity.kind == STEM
    assert raven.files == audacity.files == {"a": [Span("Cat", 0.5, 1.0)]}
    (tmp_path / "named.txt").write_text(
        "Selection\tBegin File\tBegin Time (s)\tEnd Time (s)\tSpecies\n1\tC:\\rec\\b.wav\t1\t2\tDog\n"
    )
    assert read_truth([tmp_path / "named.txt"]).files == {"b.wav": [Span("Dog", 1.0, 2.0)]}
    for label in ("cat", "dog"):
        (tmp_path / "folders" / label).mkdir(parents=True)
        (tmp_path / "folders" / label / "x.wav").write_bytes(b"")
    folders = read_truth([tmp_path / "folders"])
    assert {Path(k).parent.name: [s.label for s in v] for k, v in folders.files.items()} == {"cat": ["cat"], "dog": ["dog"]}


def results_of(*paths: str) -> ResultSet:
    found = ResultSet()
    for path in paths:
        found.inputs[path] = read_results_record(path)
    return found


def read_results_record(path: str):
    from dymn_cli.evaluate.results import InputResult

    return InputResult(path, Path("r.jsonl"), {"/m/01yrx": 0.5}, names={"/m/01yrx": "Cat"})


def test_matching_paths_names_and_youtube_ids():
    found = results_of("/data/set/clips/a.wav", "/data/other/clips/a.wav", "b.wav", "Y--4gqARaEJE_30.000_40.000.flac", "c.mp3")
    by_path = Truth(
        {
            "set/clips/a.wav": [Span("Cat")],
            "clips/a.wav": [Span("Cat")],
            "deep/b.wav": [Span("Cat")],
            "x/c.mp3": [Span("Cat")],
            "d.mp3": [Span("Cat")],
        }
    )
    matching = match_inputs(by_path, found)
    assert matching.pairs == [("set/clips/a.wav", "/data/set/clips/a.wav"), ("deep/b.wav", "b.wav"), ("x/c.mp3", "c.mp3")]
    assert matching.ambiguous == ["clips/a.wav"]  # (both a.wav end in clips/a.wav)
    assert matching.truth_only == ["d.mp3"]
    assert matching.results_only == ["/data/other/clips/a.wav", "Y--4gqARaEJE_30.000_40.000.flac"]
    ytid = match_inputs(Truth({"--4gqARaEJE": [Span("Cat")], "zzzzzzzzzzz": [Span("Cat")]}, kind=YOUTUBE_ID), found)
    assert ytid.pairs == [("--4gqARaEJE", "Y--4gqARaEJE_30.000_40.000.flac")] and ytid.truth_only == ["zzzzzzzzzzz"]
    stems = match_inputs(Truth({"b": [Span("Cat", 0, 1)], "c.mp3": [Span("Cat", 0, 1)]}, kind=STEM), found)
    assert stems.pairs == [("b", "b.wav"), ("c.mp3", "c.mp3")]


def test_labels_are_names_mids_or_head_classes():
    found = results_of("a.wav")
    assert resolve_labels(["cat", "/m/0bt9lr", "Bark"], found, truth_name="t.csv") == {
        "cat": "/m/01yrx",
        "/m/0bt9lr": "/m/0bt9lr",
        "Bark": "/m/05tny_",
    }
    with pytest.raises(UsageError, match=r"t.csv: the label 'Caat' .*did you mean 'Cat'"):
        resolve_labels(["Caat"], found, truth_name="t.csv")
    head = ResultSet()
    head.inputs["a.wav"] = type(found.inputs["a.wav"])("a.wav", Path("r"), {"head:frog": 0.5}, names={"head:frog": "frog"})
    assert resolve_labels(["frog", "head:frog"], head, truth_name="t") == {"frog": "head:frog", "head:frog": "head:frog"}
    with pytest.raises(UsageError, match="'Cat'"):
        resolve_labels(["Cat"], head, truth_name="t")  # (a head's results score no AudioSet class)


def test_evaluate_in_process(tmp_path):
    records = [
        {"path": f"clips/{n}.wav", "duration": 2.0, "labels": [{"label": "Cat", "mid": "/m/01yrx", "score": s}]}
        for n, s in enumerate([0.9, 0.8, 0.3, 0.1])
    ]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "t.csv").write_text("path,label\nclips/0.wav,Cat\nclips/2.wav,Cat\nclips/1.wav,Dog\nclips/3.wav,Dog\n")
    evaluation = evaluate([tmp_path / "r.jsonl"], [tmp_path / "t.csv"])
    assert evaluation.names == ["Cat", "Dog"]
    assert evaluation.clip.ap[0] == pytest.approx((1 + 2 / 3) / 2)
    assert evaluation.missing_scores == 4 and "--top all" in evaluation.warnings[-1]


def test_devices_are_refused_not_read_forever(tmp_path):
    for name in ("zero.jsonl", "zero.csv"):
        (tmp_path / name).symlink_to("/dev/zero")
    with pytest.raises(UsageError, match="zero.jsonl: not a results file"):
        read_results([tmp_path / "zero.jsonl"])
    with pytest.raises(UsageError, match="zero.csv: not a truth file"):
        read_truth([tmp_path / "zero.csv"])


def test_a_wide_table_of_a_head_and_audioset(tmp_path):
    (tmp_path / "w.csv").write_text("path,duration,Speech,head:hiss\na.wav,1.0,0.9,0.2\nb.wav,1.0,0.1,0.7\nc.wav,1.0,0.5,0.6\n")
    (tmp_path / "t.csv").write_text("path,label\na.wav,Speech\nb.wav,hiss\nc.wav,hiss\n")
    evaluation = evaluate([tmp_path / "w.csv"], [tmp_path / "t.csv"])
    assert evaluation.ids == ["/m/09x0r", "head:hiss"] and evaluation.names == ["Speech", "hiss"]
    assert evaluation.clip.ap.tolist() == [1.0, 1.0] and evaluation.missing_scores == 0


def test_a_wide_table_written_with_thresholds_reads_its_empty_cells_as_absent_scores(tmp_path):
    """`--wide --threshold` leaves a score under its class's threshold empty (CSV) or null (Parquet)."""
    pyarrow = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    (tmp_path / "w.csv").write_text("path,duration,Speech,Music\na.wav,1.0,0.9,\nb.wav,1.0,,0.7\n")
    table = pyarrow.table({"path": ["a.wav", "b.wav"], "duration": [1.0, 1.0], "Speech": [0.9, None], "Music": [None, 0.7]})
    parquet.write_table(table, tmp_path / "w.parquet")
    (tmp_path / "t.csv").write_text("path,label\na.wav,Speech\nb.wav,Music\n")
    for results in ("w.csv", "w.parquet"):
        evaluation = evaluate([tmp_path / results], [tmp_path / "t.csv"])
        assert evaluation.clip.ap.tolist() == [1.0, 1.0]
        assert evaluation.missing_scores == 2


@pytest.mark.parametrize("data", [b"\n", b"\r\n\r\n", b",\n", b"path\n", b"\n\npath,a,b,c,d\n"])
def test_blank_and_bare_truth_files_are_one_line(data, tmp_path):
    target = tmp_path / "truth.csv"
    target.write_bytes(data)
    with pytest.raises(UsageError) as caught:
        read_truth([target])
    assert "\n" not in str(caught.value) and str(target) in str(caught.value)
