"""Exported graphs run in onnxruntime and give what the torch engine gives, front end included, on
calibrated checkpoints, for any batch and length; they are valid ONNX and describe themselves."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from dymn_cli.audioset.labels import audioset_classes
from dymn_cli.export.graph import OPSET
from dymn_cli.graph_metadata import EMBEDDING, INPUT, LOGITS, GraphMetadata
from dymn_cli.onnx_tagger import OnnxTagger
from dymn_cli.version import __version__
from tests.calibrated import calibration_waveforms
from tests.export.graphs import HEAD_CLASSES, exported, scores_of

SCORE_TOLERANCE = 1e-4
EMBEDDING_TOLERANCE = 1e-3
"""Relative to the largest magnitude: the golden data's float32 tolerance (embeddings are features
before the classifier, whose averaging makes the scores closer than they are)."""
LENGTHS = (1.0, 10.0, 13.7)
BATCHES = (1, 3, 7)
# Every batch and length for dymn04; a short single window and a long full batch for the others
# (each costs an export and torch runs: the suite stays lean).
CASES = [("dymn04", b, s) for b in BATCHES for s in LENGTHS] + [
    ("dymn10", 1, 1.0),
    ("dymn10", 7, 13.7),
    ("mn04", 3, 10.0),
    ("mn04", 7, 13.7),
    ("ensemble", 3, 13.7),
    ("head", 7, 1.0),
]


def session(case: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(exported(case).path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(("case", "batch", "seconds"), CASES)
def test_onnxruntime_matches_the_torch_engine(case: str, batch: int, seconds: float) -> None:
    """Scores within 1e-4 of the torch engine's. Where a window drives the random checkpoint to large
    logits (one of the 1 s windows reaches 12.8), float32 rounding alone moves the torch engine's own
    scores by more than 1e-4 from the float64 result: there the graph must be as close to float64 as
    the engine is."""
    graph = exported(case)
    waveforms = calibration_waveforms(seconds)[:batch]
    logits, embeddings = session(case).run([LOGITS, EMBEDDING], {INPUT: waveforms})
    metadata = GraphMetadata.from_props({p.key: p.value for p in onnx.load(graph.path).metadata_props}, str(graph.path))
    scores = scores_of(logits, metadata.activation)
    expected_scores, expected_embeddings = graph.reference(waveforms)
    assert scores.shape == expected_scores.shape == (batch, len(metadata.labels))
    exact = functools.cache(lambda: graph.exact(waveforms))
    assert_close(scores, expected_scores, lambda: exact()[0], SCORE_TOLERANCE)
    scale = max(float(np.abs(expected_embeddings).max()), 1.0)
    assert_close(embeddings, expected_embeddings, lambda: exact()[1], EMBEDDING_TOLERANCE * scale)


def assert_close(got: np.ndarray, engine: np.ndarray, exact: Callable[[], np.ndarray], tolerance: float) -> None:
    """Each window within `tolerance` of the engine, or at most 1.5 times as far from float64 as the engine."""
    difference = np.abs(got - engine).max(axis=1)
    if (difference > tolerance).any():
        engine_error = np.abs(engine - exact()).max(axis=1)
        graph_error = np.abs(got - exact()).max(axis=1)
        assert np.all(graph_error <= np.maximum(tolerance, 1.5 * engine_error)), (difference, engine_error, graph_error)


@pytest.mark.parametrize("case", ["dymn04", "mn04", "ensemble", "head"])
def test_graph_is_valid_and_describes_itself(case: str) -> None:
    graph = exported(case)
    model = onnx.load(graph.path)
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    metadata = GraphMetadata.from_props(props, str(graph.path))
    assert metadata.opset == OPSET and {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {OPSET}
    assert [i.name for i in model.graph.input] == [INPUT]
    assert [o.name for o in model.graph.output] == [LOGITS, EMBEDDING]
    batch, samples = (d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim)
    assert batch and samples  # both dynamic
    from dymn_cli.models.weights import sha256_file

    assert metadata.checkpoint_sha256 == "+".join(sha256_file(w) for w in graph.weights)
    assert metadata.sample_rate == 32_000
    assert (model.producer_name, model.producer_version) == ("dymn-cli", __version__)
    # (the ids a run over the graph writes in its `mid` column are the graph's own mids)
    assert tuple(c.id for c in OnnxTagger(graph.path, device="cpu").classes) == metadata.mids
    if case == "head":
        assert metadata.labels == HEAD_CLASSES and metadata.activation == "softmax"
        assert metadata.mids == tuple(f"head:{name}" for name in HEAD_CLASSES)
        assert (metadata.window, metadata.hop) == (3.0, 1.5)
    else:
        classes = audioset_classes()
        assert json.loads(props["labels"]) == [c.name for c in classes]
        assert metadata.mids == tuple(c.mid for c in classes)
        assert (metadata.window, metadata.hop, metadata.activation) == (10.0, 10.0, "sigmoid")
    if case == "ensemble":
        assert metadata.model == "dymn04_calibrated+mn04_calibrated"


def test_the_dft_basis_is_computed_not_stored() -> None:
    """The 4 MB basis is computed in the graph: the file holds the network's weights and little else."""
    model = onnx.load(exported("dymn04").path)
    largest = max(int(np.prod(init.dims)) for init in model.graph.initializer if "frontend" in init.name)
    assert largest < 20_000
