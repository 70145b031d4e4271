"""A tiny graph that keeps the contract of `dymn_cli.graph_metadata` (input `waveform` `[batch, samples]`,
outputs `logits` and `embedding`, our metadata), written with onnx.helper alone: no torch, no export.
For tests of what reads graphs (the ONNX engine, the example, the web page) that must not wait for an
export, and for hostile variants of a valid graph.

Its features per clip are mean, mean square, mean absolute value and peak absolute value of the
waveform; `logits = features @ W + b`. Deterministic, and different for different audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dymn_cli.graph_metadata import EMBEDDING, INPUT, LOGITS, GraphMetadata

FEATURES = 4
OPSET = 18


def tiny_metadata(classes: int = 5, **changes) -> GraphMetadata:
    fields = dict(
        labels=tuple(f"class {k}" for k in range(classes)),
        mids=tuple(f"/m/tiny{k}" for k in range(classes)),
        model="tiny",
        checkpoint_sha256="0" * 64,
        window=1.0,
        hop=0.5,
        opset=OPSET,
    )
    fields.update(changes)
    return GraphMetadata(**fields)


def tiny_weights(classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(0, 4, (FEATURES, classes)).astype(np.float32), rng.normal(0, 1, classes).astype(np.float32)


def tiny_reference(waveform: np.ndarray, classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """What the tiny graph computes, in numpy: (logits, embedding) for `[batch, samples]`."""
    x = waveform.astype(np.float32)
    features = np.stack([x.mean(1), (x * x).mean(1), np.abs(x).mean(1), np.abs(x).max(1)], axis=1)
    weight, bias = tiny_weights(classes)
    return features @ weight + bias, features


def write_tiny_graph(path: Path, metadata: GraphMetadata | None = None) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    metadata = metadata or tiny_metadata()
    weight, bias = tiny_weights(len(metadata.labels))
    axis = numpy_helper.from_array(np.array([1], np.int64), "axis")
    nodes = [
        helper.make_node("ReduceMean", [INPUT, "axis"], ["mean"], keepdims=1),
        helper.make_node("Mul", [INPUT, INPUT], ["square"]),
        helper.make_node("ReduceMean", ["square", "axis"], ["mean_square"], keepdims=1),
        helper.make_node("Abs", [INPUT], ["magnitude"]),
        helper.make_node("ReduceMean", ["magnitude", "axis"], ["mean_magnitude"], keepdims=1),
        helper.make_node("ReduceMax", ["magnitude", "axis"], ["peak"], keepdims=1),
        helper.make_node("Concat", ["mean", "mean_square", "mean_magnitude", "peak"], [EMBEDDING], axis=1),
        helper.make_node("MatMul", [EMBEDDING, "weight"], ["product"]),
        helper.make_node("Add", ["product", "bias"], [LOGITS]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", "samples"])],
        [
            helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, ["batch", len(metadata.labels)]),
            helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, ["batch", FEATURES]),
        ],
        [axis, numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = 8
    helper.set_model_props(model, metadata.to_props())
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
