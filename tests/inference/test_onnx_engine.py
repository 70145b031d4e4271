"""The ONNX engine over the tiny graph of tests/onnx_graphs.py: what it computes, and every hostile graph
file refused when the engine is built, with one line that names the file."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from dymn_cli.audioset.labels import audioset_classes
from dymn_cli.errors import GraphError, HeadError, UsageError
from dymn_cli.inference.onnx_engine import OnnxEngine, choose_providers
from dymn_cli.models.head import Backbone, ClassifierHead
from dymn_cli.onnx_tagger import OnnxTagger
from tests.onnx_graphs import tiny_metadata, tiny_reference, write_tiny_graph


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_graph(tmp_path_factory.mktemp("graphs") / "tiny.onnx")


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize(("batch", "seconds"), [(1, 1.0), (3, 10.0), (7, 13.7)])
def test_engine_computes_the_graph(tiny, lanes, batch, seconds):
    engine = OnnxEngine(tiny, device="cpu", lanes=lanes)
    waveforms = np.random.default_rng(batch).normal(0, 0.3, (batch, round(seconds * 32_000))).astype(np.float32)
    logits, embeddings = engine(waveforms)
    expected_logits, expected_embeddings = tiny_reference(waveforms)
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(embeddings, expected_embeddings, rtol=1e-5, atol=1e-6)
    assert engine.embedding_dim == 4 and engine.preferred_batch_size == 8 * lanes
    assert engine.session.get_session_options().intra_op_num_threads == 1  # (a thread per lane, `lanes` in all)
    engine.close()


def test_tagger_scores_windows_as_the_reference(tiny):
    tagger = OnnxTagger(tiny, device="cpu")
    audio = np.random.default_rng(3).normal(0, 0.2, 80_000).astype(np.float32)
    result = tagger.tag(audio, sample_rate=32_000)  # (the graph's window and hop: 1 s and 0.5 s)
    starts = np.arange(0, 80_000 - 32_000 + 16_000, 16_000)  # the last window ends past the audio: zero-padded
    windows = np.stack([np.pad(audio[s : s + 32_000], (0, max(0, s + 32_000 - 80_000))) for s in starts])
    logits, embeddings = tiny_reference(windows)
    np.testing.assert_allclose(result.window_scores, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.embeddings, embeddings, rtol=1e-5, atol=1e-6)
    assert result.classes.names() == list(tiny_metadata().labels) and (tagger.default_window, tagger.default_hop) == (1.0, 0.5)


def test_a_softmax_graph_scores_with_a_softmax(tmp_path):
    tagger = OnnxTagger(write_tiny_graph(tmp_path / "soft.onnx", tiny_metadata(activation="softmax")), device="cpu")
    scores = tagger.tag(np.ones(32_000, np.float32) * 0.1, sample_rate=32_000, window=1.0, hop=1.0).window_scores
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def _edited(tiny, tmp_path, edit):
    model = onnx.load(tiny)
    edit(model)
    path = tmp_path / "edited.onnx"
    onnx.save(model, path)
    return path


def _rename_input(model):
    for node in model.graph.node:
        node.input[:] = ["audio" if name == "waveform" else name for name in node.input]
    model.graph.input[0].name = "audio"


def _fix_batch(model):
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1


def _drop_metadata(model):
    del model.metadata_props[:]


def _more_labels(model):
    props = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]
    helper.set_model_props(model, {**props, **tiny_metadata(classes=6).to_props()})


def _drop_embedding(model):
    del model.graph.output[1]


HOSTILE = {
    "empty": lambda tiny, tmp: _write(tmp / "empty.onnx", b""),
    "truncated": lambda tiny, tmp: _write(tmp / "cut.onnx", tiny.read_bytes()[: len(tiny.read_bytes()) // 2]),
    "text": lambda tiny, tmp: _write(tmp / "notes.onnx", b"just some text\n"),
    "missing": lambda tiny, tmp: tmp / "absent.onnx",
    "folder": lambda tiny, tmp: _folder(tmp / "dir.onnx"),
    "other tool's graph": lambda tiny, tmp: _edited(tiny, tmp, _drop_metadata),
    "wrong input name": lambda tiny, tmp: _edited(tiny, tmp, _rename_input),
    "fixed batch": lambda tiny, tmp: _edited(tiny, tmp, _fix_batch),
    "width unlike the labels": lambda tiny, tmp: _edited(tiny, tmp, _more_labels),
    "no embedding output": lambda tiny, tmp: _edited(tiny, tmp, _drop_embedding),
}


def _write(path, data):
    path.write_bytes(data)
    return path


def _folder(path):
    path.mkdir()
    return path


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_graph_files_are_one_line_naming_the_file(tiny, tmp_path, case):
    path = HOSTILE[case](tiny, tmp_path)
    with pytest.raises(GraphError) as raised:
        OnnxEngine(path, device="cpu")
    message = str(raised.value)
    assert message.startswith(str(path)) and "\n" not in message and len(message) < 400, message
    assert raised.value.exit_code == 2


def test_devices():
    assert choose_providers("auto", ["CPUExecutionProvider"]) == [("CPUExecutionProvider", {})]
    assert choose_providers("cuda:1", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == (
        "CUDAExecutionProvider",
        {"device_id": "1"},
    )
    for bad in ("cuda", "tpu", "cpu:1"):
        with pytest.raises(UsageError):
            choose_providers(bad, ["CPUExecutionProvider"])


def test_a_head_on_a_graph_of_the_audioset_classes(tmp_path):
    """The graph's own checkpoint SHA-256 decides which heads fit; their scores follow the AudioSet ones."""
    audioset = [(c.name, c.mid) for c in audioset_classes()]
    metadata = tiny_metadata(
        labels=tuple(n for n, _ in audioset), mids=tuple(m for _, m in audioset), checkpoint_sha256="ab" * 32
    )
    graph = write_tiny_graph(tmp_path / "audioset.onnx", metadata)
    rng = np.random.default_rng(1)

    def head(sha256):
        layers = [(rng.normal(size=(4, 2)).astype(np.float32), np.zeros(2, np.float32))]
        return ClassifierHead(("frog", "hiss"), Backbone("tiny", (sha256,), 4), np.zeros(4), np.ones(4), layers)

    fitting = head("ab" * 32)
    tagger = OnnxTagger(graph, device="cpu", head=fitting, with_audioset=True)
    audio = np.random.default_rng(2).normal(0, 0.2, 40_000).astype(np.float32)
    result = tagger.tag(audio, sample_rate=32_000, window=1.0, hop=1.0)
    logits, embeddings = tiny_reference(np.stack([audio[:32_000], np.pad(audio[32_000:], (0, 24_000))]), classes=527)
    np.testing.assert_allclose(result.window_scores[:, :527], 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.window_scores[:, 527:], fitting.probabilities(embeddings), rtol=1e-5, atol=1e-6)
    assert result.classes.names()[-2:] == ["frog", "hiss"] and OnnxTagger(graph, device="cpu").classes.has_audioset
    with pytest.raises(HeadError):
        OnnxTagger(graph, device="cpu", head=head("cd" * 32))
