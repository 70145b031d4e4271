"""The graph contract: what export writes, the engine reads back, and a graph of another tool is refused."""

from pathlib import Path

import numpy as np
import pytest

from dymn_cli.graph_metadata import GraphMetadata, GraphMetadataError
from tests.onnx_graphs import tiny_metadata, tiny_reference, write_tiny_graph


def test_the_readme_lists_every_metadata_key():
    """The README is where users of the graph (another runtime, the browser) learn its contract."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    described = readme[readme.index("describes itself in its `metadata_props`") :][:800]
    props = tiny_metadata().to_props()
    assert [key for key in props if f"`{key}`" not in described] == []
    assert f"`{props['format']}`" in described


def test_metadata_round_trips_through_props():
    metadata = tiny_metadata(labels=("Speech", "Dog, bark", "Ünïcode"), mids=("/m/09x0r", "", "/m/x"))
    assert GraphMetadata.from_props(metadata.to_props(), "g.onnx") == metadata


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"format": "other"}, "not a graph written by `dymn-tag export`"),
        ({"labels": "not json"}, "malformed metadata"),
        ({"labels": '["a", 1]'}, "malformed metadata"),
        ({"labels": '["a"]'}, "1 labels for 5 MIDs"),
        ({"sample_rate": "16000"}, "sample rate 16000"),
        ({"hop": "nan"}, "hop nan s"),
        ({"activation": "relu"}, "activation 'relu'"),
    ],
)
def test_malformed_metadata_is_one_line_naming_the_file(change, reason):
    props = tiny_metadata().to_props() | change
    with pytest.raises(GraphMetadataError, match=f"^g.onnx: .*{reason}"):
        GraphMetadata.from_props(props, "g.onnx")


def test_missing_key_is_named():
    props = tiny_metadata().to_props()
    del props["window"]
    with pytest.raises(GraphMetadataError, match="lacks 'window'"):
        GraphMetadata.from_props(props, "g.onnx")


def test_the_tiny_graph_runs_in_onnxruntime_as_its_numpy_reference(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    path = write_tiny_graph(tmp_path / "tiny.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    waveform = np.random.default_rng(0).normal(0, 0.1, (3, 32000)).astype(np.float32)
    logits, embedding = session.run(["logits", "embedding"], {"waveform": waveform})
    expected_logits, expected_embedding = tiny_reference(waveform)
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(embedding, expected_embedding, rtol=1e-5, atol=1e-6)
    props = {p.key: p.value for p in __import__("onnx").load(path).metadata_props}
    assert GraphMetadata.from_props(props, str(path)) == tiny_metadata()
