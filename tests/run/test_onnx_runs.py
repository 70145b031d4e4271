"""`dymn-tag ... --weights MODEL.onnx` as users run it, with torch made unimportable: files, folders,
pipes, every output format, events, embeddings and live streams, over the tiny graph of
tests/onnx_graphs.py (its scores are known in numpy)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from dymn_cli.onnx_tagger import OnnxTagger
from tests.no_torch import no_torch_env
from tests.onnx_graphs import tiny_metadata, write_tiny_graph
from tests.support import DYMN04_WEIGHTS, EXAMPLES, SAFETY_NET, dymn_tag

pytestmark = pytest.mark.slow  # each test starts dymn-tag runs


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory):
    """The environment of a run on a machine without torch (decode workers inherit it)."""
    return no_torch_env(tmp_path_factory.mktemp("no_torch"))


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(5)
    (folder / "sub").mkdir()
    sf.write(folder / "noise.wav", rng.normal(0, 0.1, 3 * 32_000).astype(np.float32), 32_000)
    tone = 0.5 * np.sin(np.arange(int(2.5 * 44_100)) / 7.0)
    sf.write(folder / "sub" / "tone.flac", np.stack([tone, 0.3 * tone], axis=1), 44_100)
    (folder / "sub" / "broken.wav").write_bytes(b"RIFF not really")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_graph(tmp_path_factory.mktemp("graph") / "tiny.onnx")


def _records(text: str) -> dict[str, dict[str, float]]:
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {r["path"]: {label["label"]: label["score"] for label in r["labels"]} for r in lines if "labels" in r}


def _expected(tiny, paths) -> dict[str, dict[str, float]]:
    tagger = OnnxTagger(tiny, device="cpu")
    outcomes = tagger.tag_many([str(p) for p in paths], window=1.0, hop=0.5)
    return {r.source: dict(zip(r.classes.names(), r.scores.tolist())) for r in outcomes if hasattr(r, "scores")}


def _assert_close(got, expected, tolerance=1e-6):
    assert got.keys() == expected.keys()
    for path in expected:
        assert got[path].keys() == expected[path].keys()
        for label, score in expected[path].items():
            assert abs(got[path][label] - score) < tolerance, (path, label, got[path][label], score)


def test_folders_and_every_file_format_without_torch(tiny, audio, no_torch, tmp_path):
    outputs = [tmp_path / f"out.{ext}" for ext in ("jsonl", "csv", "json", "parquet")]
    args = [str(audio), "--weights", str(tiny), "--top", "all", "--timeline", "--embeddings", str(tmp_path / "e.npz")]
    done = dymn_tag([*args, *[a for o in outputs for a in ("-o", str(o))]], env=no_torch)
    assert done.returncode == 1, done.stderr  # (one broken input; the others tagged)
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 2 and "broken.wav: not a readable audio file" in lines[0] and "2 tagged, 1 failed" in lines[1], lines
    expected = _expected(tiny, [audio / "noise.wav", audio / "sub" / "tone.flac"])
    _assert_close(_records(outputs[0].read_text()), expected)
    assert all(o.stat().st_size > 0 for o in outputs)
    assert json.loads(outputs[0].read_text().splitlines()[0])["model"].startswith("tiny.onnx@sha256:")  # (a local file)
    embeddings = np.load(tmp_path / "e.npz")
    assert embeddings["clip_embeddings"].shape == (2, 4) and float(embeddings["window_seconds"]) == 1.0


def test_a_pipe_and_per_input_formats_without_torch(tiny, audio, no_torch, tmp_path):
    wav = (audio / "noise.wav").read_bytes()
    done = dymn_tag(["-", "--weights", str(tiny), "--top", "all", "-f", "jsonl"], stdin=wav, env=no_torch)
    assert done.returncode == 0, done.stderr
    expected = _expected(tiny, [audio / "noise.wav"])
    _assert_close(_records(done.stdout.decode()), {"-": expected[str(audio / "noise.wav")]})
    done = dymn_tag(
        [str(audio / "noise.wav"), "--weights", str(tiny), "-f", "raven", "-t", "0.2", "--output-dir", str(tmp_path)],
        env=no_torch,
    )
    assert done.returncode == 0, done.stderr
    table = next(tmp_path.rglob("noise*.txt")).read_text()
    assert "class 0" in table


def test_live_stream_with_events_without_torch(tiny, no_torch):
    pcm = (np.random.default_rng(0).normal(0, 3000, 3 * 32_000)).astype("<i2").tobytes()
    done = dymn_tag(
        ["--live", "-", "--pcm", "s16le:32000:1", "--weights", str(tiny), "--events", "-t", "0.3"], stdin=pcm, env=no_torch
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    kinds = [r["type"] for r in records]
    assert "event" in kinds and kinds[-1] == "end"
    # the graph scores its own classes (as a head does): its window and hop, 1 s every 0.5 s
    starts = [r["start"] for r in records if r["type"] == "window"]
    assert starts[:5] == [0.0, 0.5, 1.0, 1.5, 2.0] and all(r["end"] - r["start"] == 1.0 for r in records if r["type"] == "window")


def test_live_on_an_audioset_graph_answers_every_second(tmp_path, no_torch):
    """A graph of the AudioSet classes (hop 10 s, as exported) answers a stream every second, as the
    torch engine does; --hop still says otherwise."""
    from dymn_cli.audioset.vocabulary import Vocabulary

    classes = Vocabulary.audioset()
    graph = write_tiny_graph(
        tmp_path / "audioset.onnx",
        tiny_metadata(
            len(classes), labels=tuple(c.name for c in classes), mids=tuple(c.mid for c in classes), window=2.0, hop=10.0
        ),
    )
    pcm = (np.random.default_rng(1).normal(0, 3000, 5 * 32_000)).astype("<i2").tobytes()
    for extra, step in (([], 1.0), (["--hop", "0.5"], 0.5)):
        done = dymn_tag(["--live", "-", "--pcm", "s16le:32000:1", "--weights", str(graph), *extra], stdin=pcm, env=no_torch)
        assert done.returncode == 0, done.stderr
        starts = [r["start"] for r in map(json.loads, done.stdout.decode().splitlines()) if r["type"] == "window"]
        assert starts[:3] == [0.0, step, 2 * step], extra


def test_torch_missing_for_a_checkpoint_is_one_line(tmp_path, audio, no_torch):
    done = dymn_tag([str(audio / "noise.wav"), "--weights", str(DYMN04_WEIGHTS), "-o", str(tmp_path / "x.csv")], env=no_torch)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "pip install 'dymn-cli[torch]'" in lines[0] and "--weights MODEL.onnx" in lines[0]


def test_the_python_api_without_torch_points_to_the_onnx_tagger(no_torch):
    script = "from dymn_cli import Tagger"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=no_torch, timeout=SAFETY_NET)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("ModuleNotFoundError: dymn_cli.Tagger needs torch") and "OnnxTagger" in last


def test_onnxruntime_missing_for_a_graph_is_one_line(tiny, audio, tmp_path):
    env = no_torch_env(tmp_path, blocked=("torch", "onnxruntime"))
    done = dymn_tag([str(audio / "noise.wav"), "--weights", str(tiny), "-o", str(tmp_path / "x.csv")], env=env)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "pip install 'dymn-cli[onnx]'" in lines[0], done.stderr


def test_hostile_graph_and_torch_options_are_one_line(tiny, audio, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(tiny.read_bytes()[:100])
    for args, named in (
        (["--weights", str(cut)], str(cut)),
        (["--weights", str(tiny), "--compile"], "--compile"),
        (["--weights", str(tiny), "--weights", str(DYMN04_WEIGHTS)], "runs alone"),
    ):
        done = dymn_tag([str(audio / "noise.wav"), *args, "-o", str(tmp_path / "x.csv")])
        lines = done.stderr.decode().strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and named in lines[0], done.stderr
        assert not (tmp_path / "x.csv").exists()


def test_the_onnx_path_imports_no_torch():
    """The import chain of a run (CLI, runner, writers, the ONNX tagger) leaves torch out."""
    import subprocess

    code = (
        "import sys, dymn_cli.cli.main, dymn_cli.cli.tag, dymn_cli.run.graph, dymn_cli.run.runner, dymn_cli.run.live, "
        "dymn_cli.writers.registry, dymn_cli.writers.embeddings, dymn_cli.cli.progress; "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.skipif(importlib.util.find_spec("dymn_cli.export") is None, reason="dymn-tag export is not on this branch yet")
@pytest.mark.parametrize("name", ["dymn04", "mn04"])
def test_an_exported_graph_without_torch_tags_as_the_torch_engine(name, calibrated_weights, no_torch, tmp_path):
    """On a calibrated checkpoint (tests/calibrated.py): every score within 1e-4 of the torch run's."""
    weights = calibrated_weights(name)
    graph = tmp_path / f"{name}.onnx"
    exported = dymn_tag(["export", "--weights", str(weights), "-o", str(graph)])
    assert exported.returncode == 0, exported.stderr
    audio = [str(EXAMPLES / "audio" / "chimes_and_noise.wav")]
    settings = ["--window", "4", "--hop", "2", "--top", "all", "-f", "jsonl"]
    by_torch = dymn_tag([*audio, "--weights", str(weights), *settings])
    by_onnx = dymn_tag([*audio, "--weights", str(graph), *settings], env=no_torch)
    assert by_torch.returncode == 0 and by_onnx.returncode == 0, (by_torch.stderr, by_onnx.stderr)
    _assert_close(_records(by_onnx.stdout.decode()), _records(by_torch.stdout.decode()), tolerance=1e-4)
