"""`dymn-tag` through its real entry point, as subprocesses: formats, folders, pipes, exit codes."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from dymn_cli import Tagger
from dymn_cli.inference.pipeline import PipelineStats
from dymn_cli.run.summary import RunSummary
from tests.audio_factory import tone
from tests.support import dymn_tag

pytestmark = pytest.mark.slow  # every test here starts dymn-tag or decode workers


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    tone(root / "a.wav", freq=440, seconds=3.0)
    tone(root / "sub" / "b.flac", freq=1000, seconds=12.5, rate=44_100, noise=0.1)
    tone(root / "sub" / "deeper" / "c.ogg", freq=200, seconds=1.0, rate=16_000, noise=0.3, seed=1)
    (root / "notes.txt").write_text("not audio, and not picked up by the folder walk")
    return root


@pytest.fixture(scope="module")
def weights(golden_dir) -> str:
    return str(golden_dir / "dymn04_seed0.pt")


@pytest.fixture(scope="module")
def api(weights) -> Tagger:
    return Tagger(weights=weights, device="cpu")


def test_table_for_one_file(corpus, weights):
    done = dymn_tag([str(corpus / "a.wav"), "--weights", weights, "--top", "3", "--format", "table"])
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "a.wav" in out and "rank" in out and "score" in out
    ranks = [int(m.group(1)) for m in re.finditer(r"^\W\s+(\d+)\s+\W", out, flags=re.MULTILINE)]
    assert ranks == [1, 2, 3]


def test_folder_to_csv_matches_api(corpus, weights, api, tmp_path):
    target = tmp_path / "labels.csv"
    done = dymn_tag([str(corpus), "-o", str(target), "--weights", weights, "--top", "5"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    rows = list(csv.DictReader(target.open()))
    assert list(rows[0]) == ["path", "rank", "label", "mid", "index", "score"]
    paths = sorted({r["path"] for r in rows})
    assert paths == sorted(str(p) for p in [corpus / "a.wav", corpus / "sub" / "b.flac", corpus / "sub" / "deeper" / "c.ogg"])
    for path in paths:
        mine = [r for r in rows if r["path"] == path]
        assert [int(r["rank"]) for r in mine] == [1, 2, 3, 4, 5]
        scores = [float(r["score"]) for r in mine]
        assert scores == sorted(scores, reverse=True)
        expected = api.tag(path)
        for r in mine:
            assert float(r["score"]) == pytest.approx(float(expected.scores[int(r["index"])]), abs=1e-6)
            assert r["label"] == expected.classes[int(r["index"])].name


def test_no_recursive_only_takes_the_top_folder(corpus, weights):
    done = dymn_tag([str(corpus), "--no-recursive", "--weights", weights, "--format", "jsonl"])
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["path"] for line in done.stdout.decode().splitlines()] == [str(corpus / "a.wav")]


def test_json_document(corpus, weights, tmp_path):
    target = tmp_path / "out.json"
    done = dymn_tag(
        [
            str(corpus / "sub" / "b.flac"),
            str(corpus / "a.wav"),
            "-o",
            str(target),
            "--weights",
            weights,
            "--top",
            "all",
            "--hop",
            "5",
        ]
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(target.read_text())
    assert document["settings"]["hop"] == 5.0 and document["settings"]["window"] == 10.0
    assert [f["path"] for f in document["files"]] == [str(corpus / "sub" / "b.flac"), str(corpus / "a.wav")]
    flac = document["files"][0]
    assert flac["duration"] == pytest.approx(12.5, abs=1e-3) and flac["n_windows"] == 2
    assert len(flac["labels"]) == 527
    assert set(flac["labels"][0]) == {"label", "mid", "index", "score"}


def test_piped_stdout_defaults_to_jsonl_and_threshold(corpus, weights):
    done = dymn_tag([str(corpus), "--weights", weights, "--threshold", "0.5", "--top", "all"])
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(records) == 3
    for record in records:
        assert all(label["score"] >= 0.5 for label in record["labels"])
    summary = done.stderr.decode().splitlines()[-1]
    assert "3 tagged, 0 failed" in summary
    # Counts, audio and wall time as h:mm:ss (16.5 s of audio), and where the time went, in 100 columns.
    timings = r"^dymn-tag: 3 tagged, 0 failed, 0:00:16 of audio in \d:\d\d:\d\d \(\d+x realtime; load [\d.]+ s, (network|waiting for audio) [\d.]+ s"
    assert re.search(timings, summary), summary
    assert len(summary) <= 100


def test_audio_on_stdin(corpus, weights, api):
    done = dymn_tag(["-", "--weights", weights, "--format", "json"], stdin=(corpus / "sub" / "b.flac").read_bytes())
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)["files"][0]
    assert record["path"] == "-"
    expected = api.tag(str(corpus / "sub" / "b.flac"))
    top = record["labels"][0]
    assert top["score"] == pytest.approx(float(expected.scores[top["index"]]), abs=1e-6)


def test_files_from_stdin(corpus, weights):
    listing = f"{corpus / 'a.wav'}\n\n{corpus / 'sub' / 'deeper' / 'c.ogg'}\n".encode()
    done = dymn_tag(["--files-from", "-", "--weights", weights], stdin=listing)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["path"] for line in done.stdout.decode().splitlines()] == [
        str(corpus / "a.wav"),
        str(corpus / "sub" / "deeper" / "c.ogg"),
    ]


def test_a_bad_file_exits_1_and_the_others_are_still_written(corpus, weights, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEjunk" * 10)
    target = tmp_path / "out.jsonl"
    done = dymn_tag([str(corpus / "a.wav"), str(bad), "-o", str(target), "--weights", weights])
    assert done.returncode == 1
    errors = [line for line in done.stderr.decode().splitlines() if "broken.wav" in line]
    assert len(errors) == 1 and "Traceback" not in done.stderr.decode()
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert all(r["model"].startswith("dymn04_seed0.pt@sha256:") for r in records)  # (each record says what wrote it)
    assert records[0]["path"] == str(corpus / "a.wav") and records[0]["labels"]
    assert records[1]["path"] == str(bad) and records[1]["error"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--no-such-option"], "dymn-tag: error: no such option: --no-such-option"),
        (["missing.wav"], "missing.wav"),
        (["x.wav", "--model", "dymn11_as"], "dymn10_as"),
        (["x.wav", "--top", "zero"], "--top"),
        (["x.wav", "-o", "out.xyz"], "extension"),
    ],
)
def test_usage_errors_exit_2_without_traceback(corpus, args, needle, tmp_path):
    tone(tmp_path / "x.wav", freq=300, seconds=0.5)
    done = dymn_tag(args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    stderr = done.stderr.decode()
    assert needle in stderr and "Traceback" not in stderr


def test_version_and_help():
    from dymn_cli import __version__

    assert dymn_tag(["--version"]).stdout.decode().strip() == f"dymn-tag {__version__}"
    help_text = dymn_tag(["--help"]).stdout.decode()
    assert "--files-from" in help_text and "Examples" in help_text


def test_models_lists_registry_and_cache(tmp_path):
    done = dymn_tag(["models"], env={"DYMN_CACHE_DIR": str(tmp_path), "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    for name in ("dymn04_as", "dymn10_as", "dymn20_as", "mn40_as_ext"):
        assert name in out
    assert str(tmp_path) in out.replace("\n", "")


def test_download_from_loopback_mirror(tmp_path, golden_dir):
    from tests.http_server import serve_directory

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(golden_dir / "dymn04_seed0.pt", mirror / "dymn04_as.pt")
    cache = tmp_path / "cache"
    with serve_directory(mirror) as server:
        env = {"DYMN_CACHE_DIR": str(cache), "DYMN_RELEASE_URL": server.url}
        done = dymn_tag(["download", "dymn04_as"], env=env)
        assert done.returncode == 0, done.stderr
        assert (cache / "dymn04_as.pt").read_bytes() == (mirror / "dymn04_as.pt").read_bytes()
        tagged = dymn_tag([str(tone(tmp_path / "t.wav", freq=500, seconds=1.0)), "--model", "dymn04_as"], env=env)
        assert tagged.returncode == 0, tagged.stderr
        assert server.request_count("dymn04_as.pt") == 1


def test_the_summary_fits_one_line_of_100_columns_with_durations_as_clock_time():
    summary = RunSummary(
        tagged=1,
        audio_seconds=10.0,
        elapsed=4.2,
        load_seconds=2.9,
        pipeline=PipelineStats(windows=1, batches=1, inference=0.8, decoding=0.1),
    )
    # (the waiting for audio, 0.1 s, is left out to fit: the network limited this run)
    assert summary.line() == "1 tagged, 0 failed, 0:00:10 of audio in 0:00:04 (2x realtime; load 2.9 s, network 0.8 s)"
    huge = RunSummary(
        tagged=1_234_567,
        failed=12_345,
        skipped=99_999,
        audio_seconds=3_600 * 9_999.4,
        elapsed=3_600 * 25.5,
        load_seconds=12.3,
        pipeline=PipelineStats(windows=10**8, batches=10**6, inference=80_000.0, decoding=1_000.0),
    )
    line = huge.line()
    assert len("dymn-tag: " + line) <= 100, line
    assert line.startswith("1234567 tagged, 12345 failed, 99999 skipped, 9999:24:00 of audio in 25:30:00")
