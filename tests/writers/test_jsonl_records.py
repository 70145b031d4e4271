"""JSON Lines is a file of records (#21): every line is one input's record with its `path`, each
carrying the model and settings that wrote it, whether written with `-o` or through a pipe; read the
way pandas, DuckDB and jq read it; a piped file cut short resumes; `--resume` checks each record.
Runs of the real `dymn-tag` on the golden checkpoints (their scores are meaningless; only the records
are compared)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dymn_cli.writers.merge import merge_outputs
from tests.audio_factory import make_audio_file
from tests.support import GOLDEN, dymn_tag

WEIGHTS = GOLDEN / "dymn04_seed0.pt"
OTHER = GOLDEN / "mn04_seed0.pt"  # (another network of the same width)
FAST = ["--device", "cpu", "--window", "1", "--hop", "1", "--top", "3", "-b", "1", "-j", "0", "-q"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Five inputs, one of which is not audio (a failure record)."""
    folder = tmp_path_factory.mktemp("corpus")
    for n in range(4):
        make_audio_file(folder / f"{n:02d}.wav", seconds=0.6 + 0.2 * n, seed=n, kind="noise" if n % 2 else "sine")
    (folder / "02b-broken.wav").write_bytes(b"RIFF....WAVEjunk" * 8)
    return folder


@pytest.fixture(scope="module")
def piped(corpus) -> bytes:
    """The whole run, written through a pipe."""
    done = dymn_tag([str(corpus), "-w", str(WEIGHTS), *FAST])
    assert done.returncode == 1, done.stderr  # (the broken input)
    return done.stdout


def _run(*args) -> subprocess.CompletedProcess:
    return dymn_tag([*FAST, *map(str, args)])


def test_a_file_and_a_pipe_get_the_same_records_and_every_reader_sees_one_row_per_input(corpus, piped, tmp_path):
    target = tmp_path / "labels.jsonl"
    assert _run(corpus, "-w", WEIGHTS, "-o", target).returncode == 1
    assert target.read_bytes() == piped
    records = [json.loads(line) for line in piped.splitlines()]
    assert len(records) == 5 and all(r["path"] and r["settings"]["window"] == 1.0 for r in records)
    assert {r["model"] for r in records} == {f"dymn04_seed0.pt@sha256:{_sha256(WEIGHTS)[:12]}"}
    assert sum("error" in r for r in records) == 1

    import pandas

    frame = pandas.read_json(target, lines=True)
    assert len(frame) == 5 and frame["path"].notna().all() and frame["model"].notna().all()

    import duckdb

    rows = duckdb.sql(f"SELECT path, model, settings.top FROM read_json_auto('{target}')").fetchall()
    assert len(rows) == 5 and all(path is not None and model and top == 3 for path, model, top in rows)

    if shutil.which("jq") is None:
        pytest.skip("jq is not installed")
    paths = subprocess.run(["jq", "-r", ".path", str(target)], capture_output=True, check=True, text=True).stdout
    assert paths.splitlines() == [r["path"] for r in records] and "null" not in paths


def test_a_piped_file_cut_short_resumes_to_the_full_set(corpus, piped, tmp_path):
    target = tmp_path / "labels.jsonl"
    cut = piped.index(b"\n", piped.index(b"\n") + 1) + 40  # two whole records, then the third cut mid-line
    target.write_bytes(piped[:cut])
    done = _run(corpus, "-w", WEIGHTS, "-o", target, "--resume")
    assert done.returncode == 1, done.stderr  # (the broken input, tagged again: it was not recorded)
    assert target.read_bytes() == piped  # every input once, in order


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-w", OTHER], "written by the model dymn04_seed0.pt@sha256:"),
        (["-w", WEIGHTS, "--hop", "0.5"], "other settings: hop 1.0 (this run: 0.5)"),
    ],
)
def test_resume_with_another_model_or_settings_is_refused_and_the_file_untouched(corpus, piped, tmp_path, args, needle):
    target = tmp_path / "labels.jsonl"
    target.write_bytes(piped[: piped.index(b"\n") + 1])
    done = _run(corpus, "-o", target, "--resume", *args)
    assert done.returncode == 2 and needle in done.stderr.decode(), done.stderr
    assert target.read_bytes() == piped[: piped.index(b"\n") + 1]


def test_a_file_whose_records_disagree_is_refused(corpus, piped, tmp_path):
    """`cat` of two runs' outputs: --resume and merge check every record, not the first only."""
    other = _run(corpus, "-w", WEIGHTS, "--top", "2").stdout
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(piped[: piped.index(b"\n") + 1] + other)
    done = _run(corpus, "-w", WEIGHTS, "-o", mixed, "--resume")
    assert done.returncode == 2 and "line 2 was written by another model or other settings" in done.stderr.decode()
    with pytest.raises(Exception, match="line 2 was written by another model"):
        merge_outputs([mixed], tmp_path / "merged.jsonl")


def test_a_file_of_the_older_header_form_is_still_resumed_and_merged(corpus, piped, tmp_path):
    records = [json.loads(line) for line in piped.splitlines()]
    header = {"model": "dymn04_seed0", "settings": records[0]["settings"]}  # (the release before named a file by its stem)
    bare = [{k: v for k, v in r.items() if k not in ("model", "settings")} for r in records]
    older = tmp_path / "older.jsonl"
    older.write_text("".join(json.dumps(r) + "\n" for r in [header, *bare[:2]]))
    done = _run(corpus, "-w", WEIGHTS, "-o", older, "--resume")
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in older.read_text().splitlines()]
    assert lines[0] == header and [r["path"] for r in lines[1:]] == [r["path"] for r in records]  # (in its own form)
    merged = tmp_path / "merged.jsonl"
    merge_outputs([older], merged)
    assert [json.loads(line) for line in merged.read_text().splitlines()] == [{**r, **header} for r in bare]


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
