"""`dymn-tag` end to end for timelines, events, label selection, embeddings and pictures: every number
in every format is checked against the Python API on the same files."""

from __future__ import annotations

import csv
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dymn_cli import Tagger
from dymn_cli.audioset.ontology import select_classes
from dymn_cli.events import detect_events
from tests.support import dymn_tag

pytestmark = pytest.mark.slow  # every test here starts dymn-tag or decode workers

WINDOW, HOP = ["--window", "2", "--hop", "0.5"], 0.5
THRESHOLD = 0.5


def synthetic(path: Path, seconds: float, *, seed: int) -> Path:
    """A tone that comes and goes every 1.5 s over a little noise, at 32 kHz."""
    rate = 32_000
    t = np.arange(int(seconds * rate)) / rate
    on = (t // 1.5) % 2 == 1
    rng = np.random.default_rng(seed)
    x = np.where(on, 0.4 * np.sin(2 * np.pi * (300 + 200 * seed) * t), 0.0) + 0.02 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, x.astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("timeline")
    synthetic(root / "a.wav", 7.3, seed=0)
    synthetic(root / "sub" / "b.flac", 4.2, seed=1)
    return root


@pytest.fixture(scope="module")
def weights(golden_dir) -> str:
    return str(golden_dir / "dymn04_seed0.pt")


@pytest.fixture(scope="module")
def api(weights):
    tagger = Tagger(weights=weights, device="cpu")
    cache: dict[str, object] = {}

    def tag(path: Path | str):
        key = str(path)
        if key not in cache:
            cache[key] = tagger.tag(key, window=2.0, hop=HOP)
        return cache[key]

    return tag


def tag_cli(*args: str, stdin: bytes | None = None, cwd: Path | None = None):
    done = dymn_tag([*args, "-j", "0", "-q"], stdin=stdin, cwd=cwd)
    return done


def files_of(corpus: Path) -> list[Path]:
    return [corpus / "a.wav", corpus / "sub" / "b.flac"]


def test_timeline_csv_rows_match_the_windows(corpus, weights, api, tmp_path):
    target = tmp_path / "t.csv"
    done = tag_cli(str(corpus), "--weights", weights, *WINDOW, "--timeline", "--top", "3", "-o", str(target))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(target.open()))
    assert list(rows[0]) == ["path", "start", "end", "label", "mid", "index", "score"]
    for path in files_of(corpus):
        result = api(path)
        mine = [r for r in rows if r["path"] == str(path)]
        assert len(mine) == 3 * len(result.starts)
        for k, (start, end) in enumerate(zip(result.starts, result.ends)):
            window = mine[3 * k : 3 * k + 3]
            assert [float(r["start"]) for r in window] == pytest.approx([float(start)] * 3)
            assert [float(r["end"]) for r in window] == pytest.approx([min(float(end), result.duration)] * 3)
            for r in window:
                assert float(r["score"]) == pytest.approx(float(result.window_scores[k, int(r["index"])]), abs=1e-5)
            best = np.sort(result.window_scores[k])[::-1][:3]
            np.testing.assert_allclose(sorted((float(r["score"]) for r in window), reverse=True), best, atol=1e-5)


def test_json_windows_and_events_with_label_selection(corpus, weights, api, tmp_path):
    target = tmp_path / "t.json"
    done = tag_cli(
        str(corpus / "a.wav"),
        "--weights",
        weights,
        *WINDOW,
        "--timeline",
        "--events",
        "--top",
        "all",
        "--threshold",
        str(THRESHOLD),
        "--top",
        "all",
        "--labels",
        "Animal",
        "--exclude",
        "Dog",
        "--min-duration",
        "1",
        "-o",
        str(target),
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(target.read_text())
    assert document["settings"]["events"] == {"threshold": THRESHOLD, "min_duration": 1.0}
    record = document["files"][0]
    result = api(corpus / "a.wav")
    classes = select_classes(labels="Animal", exclude="Dog")
    assert "Bark" not in {result.classes[i].name for i in classes} and "Cat" in {result.classes[i].name for i in classes}
    assert {label["index"] for label in record["labels"]} <= set(classes)
    assert len(record["windows"]) == len(result.starts)
    for k, window in enumerate(record["windows"]):
        assert window["start"] == pytest.approx(float(result.starts[k]))
        assert all(entry["score"] >= THRESHOLD and entry["index"] in classes for entry in window["labels"])
        expected = {i for i in classes if result.window_scores[k, i] >= THRESHOLD + 1e-5}
        assert expected <= {entry["index"] for entry in window["labels"]}
    events = detect_events(result, threshold=THRESHOLD, min_duration=1.0, classes=classes)
    assert events, "the test needs some events"
    assert len(record["events"]) == len(events)
    for got, want in zip(record["events"], events):
        assert (got["label"], got["mid"], got["index"]) == (want.label, want.mid, want.index)
        assert got["start"] == pytest.approx(want.start) and got["end"] == pytest.approx(want.end)
        assert got["end"] - got["start"] >= 1.0 and got["end"] <= result.duration + 1e-9
        assert got["peak"] == pytest.approx(want.peak, abs=1e-5) and got["mean"] == pytest.approx(want.mean, abs=1e-5)
        for edge in (got["start"], got["end"]):  # on the hop grid, or the end of the file
            assert edge == pytest.approx(result.duration) or abs(edge / HOP - round(edge / HOP)) < 1e-6


def test_events_csv(corpus, weights, api):
    done = tag_cli(
        str(corpus / "sub" / "b.flac"),
        "--weights",
        weights,
        *WINDOW,
        "--events",
        "--top",
        "all",
        "--threshold",
        str(THRESHOLD),
        "--format",
        "csv",
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode())))
    assert list(rows[0]) == ["path", "start", "end", "label", "mid", "index", "peak", "mean"]
    events = detect_events(api(corpus / "sub" / "b.flac"), threshold=THRESHOLD)
    assert events
    assert [(r["label"], float(r["start"]), float(r["end"])) for r in rows] == [
        (e.label, pytest.approx(e.start), pytest.approx(e.end)) for e in events
    ]
    assert [float(r["peak"]) for r in rows] == pytest.approx([e.peak for e in events], abs=1e-5)


def test_audacity_beside_inputs_and_raven_under_output_dir(corpus, weights, api, tmp_path):
    work = tmp_path / "work"
    for path in files_of(corpus):
        relative = path.relative_to(corpus)
        (work / "in" / relative).parent.mkdir(parents=True, exist_ok=True)
        (work / "in" / relative).write_bytes(path.read_bytes())
    done = tag_cli(
        "in",
        "--weights",
        weights,
        *WINDOW,
        "--threshold",
        str(THRESHOLD),
        "--top",
        "all",
        "--labels",
        "Music",
        "--format",
        "audacity",
        cwd=work,
    )
    assert done.returncode == 0, done.stderr
    done = tag_cli(
        "in",
        "--weights",
        weights,
        *WINDOW,
        "--threshold",
        str(THRESHOLD),
        "--top",
        "all",
        "--labels",
        "Music",
        "--format",
        "raven",
        "--output-dir",
        "tables",
        cwd=work,
    )
    assert done.returncode == 0, done.stderr
    music = select_classes(labels="Music")
    for relative, stem in ((Path("a.wav"), "a"), (Path("sub/b.flac"), "b")):
        events = detect_events(api(corpus / relative), threshold=THRESHOLD, classes=music)
        assert events
        labels = (work / "in" / relative).parent / f"{stem}.labels.txt"
        rows = [line.split("\t") for line in labels.read_text().splitlines()]
        assert [(float(a), float(b), name) for a, b, name in rows] == [
            (pytest.approx(e.start, abs=1e-6), pytest.approx(e.end, abs=1e-6), e.label) for e in events
        ]
        table = work / "tables" / "in" / relative.parent / f"{stem}.Table.1.selections.txt"
        selections = list(csv.DictReader(table.open(newline=""), delimiter="\t"))
        assert [int(s["Selection"]) for s in selections] == list(range(1, len(events) + 1))
        assert [(float(s["Begin Time (s)"]), float(s["End Time (s)"]), s["Label"]) for s in selections] == [
            (pytest.approx(e.start, abs=1e-6), pytest.approx(e.end, abs=1e-6), e.label) for e in events
        ]
        assert {s["View"] for s in selections} <= {"Spectrogram 1"} and {s["High Freq (Hz)"] for s in selections} <= {"16000.0"}


def test_stdin_exports_need_an_output_dir(corpus, weights, tmp_path):
    audio = (corpus / "a.wav").read_bytes()
    refused = tag_cli("-", "--weights", weights, "--format", "audacity", stdin=audio)
    assert refused.returncode == 2 and b"--output-dir" in refused.stderr and b"Traceback" not in refused.stderr
    done = tag_cli("-", "--weights", weights, "--format", "audacity", "--output-dir", str(tmp_path / "o"), stdin=audio)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "stdin.labels.txt").exists()


def test_embeddings_archive_leaves_failed_inputs_out(corpus, weights, api, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEjunk" * 10)
    target = tmp_path / "emb.npz"
    inputs = [str(corpus / "a.wav"), str(bad), str(corpus / "sub" / "b.flac")]
    done = tag_cli(*inputs, "--weights", weights, *WINDOW, "--timeline", "--embeddings", str(target), "--format", "jsonl")
    assert done.returncode == 1  # the broken file
    with np.load(target) as archive:
        assert list(archive["paths"]) == [inputs[0], inputs[2]]
        results = [api(inputs[0]), api(inputs[2])]
        np.testing.assert_allclose(archive["clip_embeddings"], np.stack([r.embedding for r in results]), atol=1e-4)
        np.testing.assert_allclose(archive["window_embeddings"], np.concatenate([r.embeddings for r in results]), atol=1e-4)
        np.testing.assert_array_equal(archive["window_path_index"], np.repeat([0, 1], [len(r.starts) for r in results]))
        np.testing.assert_allclose(archive["window_starts"], np.concatenate([r.starts for r in results]))
        # the last window's end is clipped to the end of the file, as in the timeline: they join on (path, start, end)
        np.testing.assert_allclose(archive["window_ends"], np.concatenate([np.minimum(r.ends, r.duration) for r in results]))
        timeline = {
            (json.loads(line)["path"], w["start"], w["end"])
            for line in done.stdout.decode().splitlines()
            if "windows" in json.loads(line)
            for w in json.loads(line)["windows"]
        }
        archived = {
            (str(archive["paths"][i]), float(s), float(e))
            for i, s, e in zip(archive["window_path_index"], archive["window_starts"], archive["window_ends"])
        }
        assert archived == timeline
    tagger = Tagger(weights=weights, device="cpu")
    np.testing.assert_allclose(tagger.embed(inputs[0], window=2.0, hop=HOP), results[0].embedding, atol=1e-5)


def test_pictures(corpus, weights, tmp_path):
    pytest.importorskip("matplotlib")
    one = tmp_path / "a.png"
    done = tag_cli(str(corpus / "a.wav"), "--weights", weights, *WINDOW, "--events", "--plot", str(one), "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "pics"
    done = tag_cli(str(corpus), "--weights", weights, "--plot", str(folder), "--format", "jsonl", "--top", "4")
    assert done.returncode == 0, done.stderr
    pictures = sorted(folder.rglob("*.png"))
    assert [p.name for p in pictures] == ["a.png", "b.png"]
    for picture in [one, *pictures]:
        data = picture.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert 800 <= width <= 2000 and 300 <= height <= 1500 and len(data) < 200_000


def test_labels_command():
    done = dymn_tag(["labels", "dog"])
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode()), delimiter="\t"))
    assert list(rows[0]) == ["index", "mid", "name", "path"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["Dog"]["index"] == "74" and by_name["Dog"]["mid"] == "/m/0bt9lr"
    assert by_name["Bark"]["path"] == "Animal > Domestic animals, pets > Dog"
    assert "Speech" not in by_name
    missing = dymn_tag(["labels", "dgo"])
    assert missing.returncode == 2 and b"Dog" in missing.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--labels", "Animal,dgo"], "did you mean 'Dog'"),
        (["--embeddings", "e.npz", "--resume", "-o", "x.jsonl"], "--resume"),
        (["--timeline", "--events", "-o", "x.csv"], "a CSV file holds one table"),
        (["--timeline", "--events", "-o", "x.parquet"], "a Parquet file holds one table"),
    ],
)
def test_usage_errors(corpus, weights, args, needle, tmp_path):
    done = tag_cli(str(corpus / "a.wav"), "--weights", weights, *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr.decode() and "Traceback" not in done.stderr.decode()
    assert not list(tmp_path.iterdir())


def test_a_window_given_alone_hops_by_itself_and_a_longer_hop_warns(weights, tmp_path):
    """`--window 2` alone: windows every 2 s (the default hop, 10 s, would leave 8 s of every 10 unheard);
    a hop longer than the window is taken, with a warning."""
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, 0.1 * np.random.default_rng(2).standard_normal(7 * 16_000).astype(np.float32), 16_000)
    done = dymn_tag([str(clip), "--weights", weights, "--window", "2", "--timeline", "-f", "csv"])
    assert done.returncode == 0, done.stderr.decode()
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode())))
    assert sorted({float(r["start"]) for r in rows}) == [0.0, 2.0, 4.0, 6.0]
    done = dymn_tag([str(clip), "--weights", weights, "--window", "2", "--hop", "3", "--timeline", "-f", "csv"])
    assert done.returncode == 0 and b"--hop 3 s is longer than the 2 s window" in done.stderr
    assert sorted({float(r["start"]) for r in csv.DictReader(io.StringIO(done.stdout.decode()))}) == [0.0, 3.0, 6.0]
