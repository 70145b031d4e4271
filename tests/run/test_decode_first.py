"""A run starts its decode workers before torch is imported and the model loads."""

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dymn_cli.audio.windows import WindowGrid
from dymn_cli.inference.decode_stage import DecodeJob
from dymn_cli.inference.worker_pool import PipelineSettings, start_decoding
from dymn_cli.run.runner import RunSettings, label_inputs
from dymn_cli.writers.base import OutputOptions
from tests.audio_factory import make_audio_file
from tests.support import DYMN04_WEIGHTS

pytestmark = pytest.mark.slow  # every test here starts dymn-tag or decode workers

WEIGHTS = DYMN04_WEIGHTS


def test_a_run_and_its_writers_do_not_import_torch():
    """What must be loaded before the decode workers start: none of it may pull torch in."""
    code = (
        "import sys, dymn_cli.cli.main, dymn_cli.run.runner, dymn_cli.writers.registry, dymn_cli.cli.progress, dymn_cli.run.options, "
        "dymn_cli.inference.pipeline, dymn_cli.results, dymn_cli.writers.editors, dymn_cli.writers.embeddings\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.fixture
def files(tmp_path):
    return [str(make_audio_file(tmp_path / f"{i}.wav", seconds=2.5, kind="noise", seed=i)) for i in range(3)]


def test_the_decode_workers_run_while_the_tagger_loads(files, tmp_path):
    workers_at_load = []

    def load_tagger():
        from dymn_cli.tagger import Tagger

        workers_at_load.append(len(multiprocessing.active_children()))
        return Tagger(weights=WEIGHTS, device="cpu", batch_size=2)

    runs = {}
    for decode_first in (True, False):
        output = tmp_path / f"{decode_first}.jsonl"
        settings = RunSettings(window=1.0, hop=1.0, workers=2, decode_first=decode_first)
        summary = label_inputs(files, tagger=load_tagger, output=output, options=OutputOptions(top=5), settings=settings)
        assert summary.tagged == 3
        runs[decode_first] = _labels(output)
    assert workers_at_load == [2, 0]  # without decode_first, the workers start with the pipeline
    assert runs[True] == pytest.approx(runs[False], abs=1e-5)
    assert multiprocessing.active_children() == []


def test_a_tagger_that_fails_to_load_stops_the_early_workers(files, tmp_path):
    def broken_tagger():
        raise RuntimeError("no model today")

    with pytest.raises(RuntimeError, match="no model today"):
        label_inputs(
            files,
            tagger=broken_tagger,
            output=tmp_path / "out.jsonl",
            settings=RunSettings(window=1.0, hop=1.0, workers=2, decode_first=True),
        )
    assert multiprocessing.active_children() == []


def test_a_decoding_started_for_other_windows_is_stopped_and_the_inputs_decoded_anew(files):
    from dymn_cli.tagger import Tagger

    tagger = Tagger(weights=WEIGHTS, device="cpu", batch_size=2)
    other_grid = WindowGrid.from_seconds(window=1.0, hop=0.5, sample_rate=32_000)
    early = start_decoding(
        [DecodeJob(i, f, name=f) for i, f in enumerate(files)], PipelineSettings(grid=other_grid, batch_size=2, workers=1)
    )
    reused = list(tagger.tag_many(files, window=1.0, hop=1.0, workers=1, decoding=early))
    plain = list(tagger.tag_many(files, window=1.0, hop=1.0, workers=1))
    assert [len(r.starts) for r in reused] == [len(r.starts) for r in plain] == [3, 3, 3]
    for a, b in zip(reused, plain):
        np.testing.assert_allclose(a.window_scores, b.window_scores, atol=1e-5)
    assert multiprocessing.active_children() == []


def _labels(path: Path) -> list[float]:
    return [
        label["score"] for line in path.read_text().splitlines()[1:] for label in json.loads(line)["labels"]
    ]  # (after the header)


def test_a_single_file_gets_a_decode_worker_too(files, tmp_path):
    workers_at_load = []

    def load_tagger():
        from dymn_cli.tagger import Tagger

        workers_at_load.append(len(multiprocessing.active_children()))
        return Tagger(weights=WEIGHTS, device="cpu")

    for decode_first in (True, False):
        summary = label_inputs(
            files[:1],
            tagger=load_tagger,
            output=tmp_path / f"{decode_first}.jsonl",
            settings=RunSettings(window=1.0, hop=1.0, decode_first=decode_first),
        )
        assert summary.tagged == 1
    assert workers_at_load == [1, 0]  # (a library run with a tagger built already gains nothing from one)


def test_a_failing_progress_display_stops_the_early_workers(files, tmp_path):
    def broken_display(todo):
        raise RuntimeError("no terminal")

    with pytest.raises(RuntimeError, match="no terminal"):
        label_inputs(
            files,
            tagger=lambda: _tagger(),
            output=tmp_path / "out.jsonl",
            on_start=broken_display,
            settings=RunSettings(window=1.0, hop=1.0, workers=2, decode_first=True),
        )
    assert multiprocessing.active_children() == []


def _tagger():
    from dymn_cli.tagger import Tagger

    return Tagger(weights=WEIGHTS, device="cpu")
