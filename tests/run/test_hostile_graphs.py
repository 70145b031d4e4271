"""Hostile graph files beyond tests/inference/test_onnx_engine.py's, as an adversary writes them: a device
or FIFO named .onnx, a graph whose outputs are NaN (always, or only for loud windows), one that mixes the
windows of a batch, one that asks onnxruntime for terabytes, a newer opset, and one whose default window
no run takes. Each ends in one line naming the file (exit 2), before any output is opened; a stream whose
graph fails on some windows goes on with gaps, never a NaN in a record."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
import soundfile as sf
from onnx import helper, numpy_helper

from dymn_cli.errors import GraphError
from dymn_cli.onnx_tagger import OnnxTagger
from tests.onnx_graphs import tiny_metadata, write_tiny_graph
from tests.support import SAFETY_NET, dymn_tag


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_graph(tmp_path_factory.mktemp("graph") / "tiny.onnx")


def _edited(tiny, path, *nodes, initializers=(), opset=None):
    """The tiny graph with `logits` computed from its own (renamed `plain`) by `nodes`."""
    model = onnx.load(tiny)
    model.graph.node[-1].output[0] = "plain"
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in initializers)
    if opset is not None:
        model.opset_import[0].version = opset
    onnx.save(model, path)
    return path


def _scaled(tiny, path, value):
    by = [("by", np.array([value], np.float32))]
    return _edited(tiny, path, helper.make_node("Mul", ["plain", "by"], ["logits"]), initializers=by)


HOSTILE = {
    "/dev/zero": (lambda tiny, tmp: _link(tmp / "zero.onnx", "/dev/zero"), "not a regular file"),
    "a FIFO": (lambda tiny, tmp: _fifo(tmp / "fifo.onnx"), "not a regular file"),
    "a dangling link": (lambda tiny, tmp: _link(tmp / "gone.onnx", tmp / "absent"), "a link to nothing"),
    "NaN outputs": (lambda tiny, tmp: _scaled(tiny, tmp / "nan.onnx", np.nan), "not numbers"),
    "infinite outputs": (lambda tiny, tmp: _scaled(tiny, tmp / "inf.onnx", np.inf), "not numbers"),
    "windows of a batch mixed": (
        lambda tiny, tmp: _edited(
            tiny,
            tmp / "mixed.onnx",
            helper.make_node("ReduceMean", ["plain", "batch_axis"], ["logits"], keepdims=1),
            initializers=[("batch_axis", np.array([0], np.int64))],
        ),
        "for a batch of 2 windows",
    ),
    "terabytes asked for": (
        lambda tiny, tmp: _edited(
            tiny,
            tmp / "huge.onnx",
            helper.make_node("ConstantOfShape", ["shape"], ["big"], value=numpy_helper.from_array(np.zeros(1, np.float32))),
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
            helper.make_node("Add", ["plain", "total"], ["logits"]),
            initializers=[("shape", np.array([50_000, 50_000, 1000], np.int64))],
        ),
        "ConstantOfShape node failed: Failed to allocate",
    ),
    "a newer opset": (
        lambda tiny, tmp: _edited(tiny, tmp / "opset.onnx", helper.make_node("Identity", ["plain"], ["logits"]), opset=999),
        "Opset 999",
    ),
    "a window no run takes": (
        lambda tiny, tmp: write_tiny_graph(tmp / "hour.onnx", tiny_metadata(window=3600.0)),
        "its default window and hop cannot be used: window must be at most 600 s",
    ),
    "a window of no samples": (
        lambda tiny, tmp: write_tiny_graph(tmp / "instant.onnx", tiny_metadata(window=1e-9)),
        "its default window and hop cannot be used: window must be at least",
    ),
}


def _link(path, target):
    os.symlink(target, path)
    return path


def _fifo(path):
    os.mkfifo(path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "noise.wav"
    sf.write(path, np.random.default_rng(1).normal(0, 0.1, 32_000).astype(np.float32), 32_000)
    return path


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_graph_is_one_line_naming_the_file_and_its_reason(tiny, clip, tmp_path, case):
    make, reason = HOSTILE[case]
    graph = make(tiny, tmp_path)
    done = dymn_tag([str(clip), "--weights", str(graph), "-o", str(tmp_path / "out.jsonl")], timeout=SAFETY_NET)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert str(graph) in lines[0] and reason in lines[0] and ".cc:" not in lines[0], lines[0]
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(("name", "reason"), [("nonexist.onnx", "no such file"), ("gone.onnx", "a link to nothing")])
def test_a_missing_graph_is_said_plainly(clip, tmp_path, name, reason):
    """Missing is the whole story: nothing was read that could be 'not an ONNX graph'."""
    graph = tmp_path / name
    if name == "gone.onnx":
        os.symlink(tmp_path / "absent", graph)
    done = dymn_tag([str(clip), "--weights", str(graph)], timeout=60)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and lines == [f"dymn-tag: error: {graph}: {reason}"], done.stderr


def test_a_stream_whose_graph_fails_on_loud_windows_goes_on_with_gaps(tiny, tmp_path):
    """logits + 0 * log(0.95 - peak): finite on the load-time probe, NaN on a window that peaks above 0.95."""
    graph = _edited(
        tiny,
        tmp_path / "loud_nan.onnx",
        helper.make_node("Sub", ["limit", "peak"], ["headroom"]),
        helper.make_node("Log", ["headroom"], ["log_headroom"]),
        helper.make_node("Mul", ["log_headroom", "zero"], ["poison"]),
        helper.make_node("Add", ["plain", "poison"], ["logits"]),
        initializers=[("limit", np.array([0.95], np.float32)), ("zero", np.array([0.0], np.float32))],
    )
    quiet = np.full(32_000, 0.1, np.float32)
    pcm = np.concatenate([quiet, np.ones(32_000, np.float32), quiet]).astype("<f4").tobytes()
    done = dymn_tag(
        ["--live", "-", "--pcm", "f32le:32000:1", "--weights", str(graph), "--hop", "1"], stdin=pcm, timeout=SAFETY_NET
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["type"] for r in records] == ["window", "gap", "window", "end"], records
    assert b": NaN" not in done.stdout and "not a number" in records[1]["reason"]
    assert "RuntimeWarning" not in done.stderr.decode()


@pytest.mark.parametrize("label", ["two\nlines", "tab\there", "zero\u200bwidth", "\ufeffbom"])
def test_a_label_that_would_split_rows_or_hide_is_refused(tmp_path, label):
    path = write_tiny_graph(tmp_path / "labels.onnx", tiny_metadata(labels=(label, "b", "c", "d", "e")))
    with pytest.raises(GraphError, match="line break or an invisible character") as raised:
        OnnxTagger(path, device="cpu")
    assert str(raised.value).startswith(f"{path}: ") and "\n" not in str(raised.value)


def test_a_graph_named_like_a_checkpoint_is_told_apart(tiny, clip, tmp_path):
    renamed = tmp_path / "model.pt"
    renamed.write_bytes(tiny.read_bytes())
    done = dymn_tag([str(clip), "--weights", str(renamed), "-o", str(tmp_path / "out.jsonl")], timeout=SAFETY_NET)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and f"{renamed} looks like an ONNX graph" in lines[0], done.stderr
    assert lines[0].endswith("rename it model.onnx to tag with it"), done.stderr


def test_a_graph_given_to_the_python_tagger_points_to_onnx_tagger(tiny):
    """`Tagger` runs checkpoints; its advice is the API's (the CLI's, rename it, would not help)."""
    from dymn_cli import Tagger
    from dymn_cli.errors import WeightsError

    with pytest.raises(WeightsError) as raised:
        Tagger(weights=str(tiny), device="cpu")
    assert str(raised.value).endswith(f"a graph runs in dymn_cli.OnnxTagger({str(tiny)!r})"), raised.value


def test_a_graph_whose_strings_are_not_utf8_leaves_stdout_alone(tiny, clip, tmp_path):
    """onnxruntime's Python layer prints an 'EP Error' banner to stdout where its message does not decode
    (here: an operator whose name is not UTF-8), then tries the file again."""
    graph = tmp_path / "latin1.onnx"
    graph.write_bytes(tiny.read_bytes().replace(b"\x22\x0aReduceMean", b"\x22\x0aRe\xe9\xffceMean", 1))
    done = dymn_tag([str(clip), "--weights", str(graph), "-f", "jsonl"], timeout=SAFETY_NET)
    assert done.returncode == 2 and done.stdout == b"", done.stdout
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and str(graph) in lines[0] and "not UTF-8 text" in lines[0], done.stderr


@pytest.mark.parametrize("option", ["-o", "--embeddings"])
def test_an_output_named_like_the_model_file_is_refused_and_the_model_kept(tiny, clip, tmp_path, option):
    """`-f jsonl -o model.onnx` (or through a link) wrote the records over the graph the run was reading."""
    graph = tmp_path / "model.onnx"
    graph.write_bytes(tiny.read_bytes())
    (tmp_path / "link.npz").symlink_to(graph)
    target = graph if option == "-o" else tmp_path / "link.npz"
    done = dymn_tag([str(clip), "--weights", str(graph), "-f", "jsonl", option, str(target)], timeout=SAFETY_NET)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "a file the run reads" in lines[0], done.stderr
    assert graph.read_bytes() == tiny.read_bytes()
