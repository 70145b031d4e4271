"""`--ray`: a folder labelled through Ray Data (decode tasks, actor pool) gives the single-machine
scores for every file, and a bad file is one failure record, not the end of the run.

One in-process Ray instance serves the whole module (Ray starts slowly); the CLI test connects a
second driver, the real `dymn-tag` in a subprocess, to that same instance by its address.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'dymn-cli[ray]' to run the --ray tests")

from dymn_cli import Tagger  # noqa: E402
from dymn_cli.inference.distributed import RayOptions  # noqa: E402
from dymn_cli.ray_tagger import RayTagger  # noqa: E402
from dymn_cli.run.inputs import walk_audio_files  # noqa: E402
from dymn_cli.run.runner import RunSettings, label_inputs  # noqa: E402
from dymn_cli.tagger import TagFailure, TagResult  # noqa: E402
from dymn_cli.writers.base import OutputOptions  # noqa: E402
from dymn_cli.writers.merge import merge_outputs  # noqa: E402
from tests.audio_factory import tone  # noqa: E402
from tests.support import DYMN_TAG, SAFETY_NET  # noqa: E402

pytestmark = pytest.mark.slow  # every test here starts dymn-tag or decode workers

TOL = 1e-6
HOP = 5.0


@pytest.fixture(scope="module")
def ray_address():
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray_corpus")
    tone(root / "a.wav", freq=440, seconds=3.0)
    tone(root / "z.wav", freq=700, seconds=0.5, noise=0.2)
    tone(root / "sub" / "b.flac", freq=1000, seconds=12.5, rate=44_100, noise=0.1)  # 2 windows at hop 5
    tone(root / "sub" / "deeper" / "c.ogg", freq=200, seconds=1.0, rate=16_000, noise=0.3, seed=1)
    (root / "sub" / "broken.wav").write_bytes(b"RIFF....WAVEjunk" * 10)
    return root


@pytest.fixture(scope="module")
def single_machine(folder, dymn04_weights) -> dict[str, TagResult | TagFailure]:
    paths = list(walk_audio_files(str(folder)))
    outcomes = Tagger(weights=dymn04_weights, device="cpu").tag_many(paths, hop=HOP)
    return {path: outcome for path, outcome in zip(paths, outcomes)}


def test_folder_through_ray_equals_the_single_machine_run(ray_address, folder, dymn04_weights, single_machine, tmp_path):
    seen: list[TagResult | TagFailure] = []
    summary = label_inputs(
        [str(folder)],
        tagger=lambda: RayTagger(weights=dymn04_weights, device="cpu", batch_size=3, ray=RayOptions(actors=1)),
        parts_dir=tmp_path / "parts",
        part_size=2,
        format="jsonl",
        options=OutputOptions(top=None),
        settings=RunSettings(hop=HOP, decode_first=True),  # (the local decode workers stop: Ray decodes)
        on_outcome=seen.append,
    )
    assert multiprocessing.active_children() == []
    assert [o.source for o in seen] == list(single_machine)  # input order, as on one machine
    assert (summary.tagged, summary.failed, summary.exit_code) == (4, 1, 1)
    for outcome in seen:
        expected = single_machine[outcome.source]
        assert type(outcome) is type(expected)
        if isinstance(outcome, TagFailure):
            assert outcome.reason == expected.reason and "broken.wav" in outcome.reason
            continue
        assert outcome.duration == expected.duration
        np.testing.assert_array_equal(outcome.starts, expected.starts)
        np.testing.assert_allclose(outcome.scores, expected.scores, rtol=0, atol=TOL)
        np.testing.assert_allclose(outcome.window_scores, expected.window_scores, rtol=0, atol=TOL)
        np.testing.assert_allclose(outcome.embeddings, expected.embeddings, rtol=0, atol=1e-4)
    # The part files hold every input once, the bad one as an error record.
    assert len(list((tmp_path / "parts").glob("part-*.jsonl"))) == 3
    merge_outputs([tmp_path / "parts"], tmp_path / "all.jsonl")
    records = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert len({(r["model"], json.dumps(r["settings"])) for r in records}) == 1  # (each record says what wrote it)
    assert [r["path"] for r in records] == list(single_machine)
    assert [{"path": r["path"], "error": r["error"]} for r in records if "error" in r] == [
        {"path": str(folder / "sub" / "broken.wav"), "error": single_machine[str(folder / "sub" / "broken.wav")].reason}
    ]


def test_cli_with_ray_reports_the_bad_file_and_writes_parts(ray_address, folder, dymn04_weights, single_machine, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [
            DYMN_TAG,
            str(folder),
            "--ray",
            ray_address,
            "--actors",
            "1",
            "--weights",
            str(dymn04_weights),
            "--hop",
            str(HOP),
            "--top",
            "all",
            "--output-dir",
            str(out),
            "--format",
            "parquet",
            "--part-size",
            "3",
        ],
        capture_output=True,
        timeout=SAFETY_NET,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert "core_worker.cc" not in stderr and "max_restarts" not in stderr  # no needless error-level Ray line
    assert len([line for line in stderr.splitlines() if "broken.wav" in line]) == 1
    assert "4 tagged, 1 failed" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    merge_outputs([out], tmp_path / "all.parquet")
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "all.parquet").to_pylist()
    good = [p for p, o in single_machine.items() if isinstance(o, TagResult)]
    assert list(dict.fromkeys(r["path"] for r in rows)) == good  # walk order; the long form has no error rows
    for row in rows:
        assert row["score"] == pytest.approx(float(single_machine[row["path"]].scores[row["index"]]), abs=TOL)
    assert len(rows) == 527 * len(good)
