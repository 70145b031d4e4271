"""int8: static quantisation with onnxruntime's tools (QDQ, int8 weights per output channel, uint8
activations calibrated on the user's audio), then the agreement of the int8 graph with the float32
one on calibration windows it did not see.

What stays float32 (`FLOAT_SCOPES`, chosen by measurement, see README "int8"): the front end (STFT,
mel bank, log: a log of quantised power is useless, and it has almost no weights now that the DFT
basis is computed in the graph), and DyMN's context path (context generator and the attention/Dy-ReLU
heads: small weights that decide every kernel; quantised, they cost agreement and save little).

DyMN's kernel banks (most of its weights) feed `attention @ bank`, a MatMul of which onnxruntime's
quantiser would store one float scale per column (the size of the bank again). They are stored here
as int8 with one scale per kernel row instead, dequantised in the graph (`compress_banks`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dymn_cli.graph_metadata import INPUT, LOGITS

FLOAT_SCOPES = ("/frontend/", "conv/MatMul_1", "depth_conv/")
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]
"""Only the products are quantised: the elementwise steps between them (Dy-ReLU, gates, hardswish)
would only add quantise/dequantise pairs that onnxruntime cannot fuse."""
BANK_SUFFIX = ".bank"


@dataclass(frozen=True)
class Agreement:
    """The int8 graph against the float32 one, on held-out windows."""

    windows: int
    top1: float
    top10: float
    mean_difference: float
    max_difference: float
    size_ratio: float
    speed_ratio: float
    """float32 time over int8 time per window (one thread, batch 1): above 1, int8 is faster."""

    def lines(self) -> list[str]:
        return [
            f"int8 against float32 on {self.windows} held-out calibration windows:",
            f"  top-1 agreement {self.top1:.1%}, mean top-10 overlap {self.top10:.1%}",
            f"  score difference mean {self.mean_difference:.4f}, largest {self.max_difference:.4f}",
            f"  size {self.size_ratio:.1%} of float32, speed {self.speed_ratio:.2f}x float32 (one thread, batch 1)",
        ]


def float_nodes(model: onnx.ModelProto, scopes: Sequence[str] | None = None) -> list[str]:
    """Nodes that stay float32: those in `scopes` (default `FLOAT_SCOPES`), and the MatMuls that read a
    kernel bank."""
    scopes = FLOAT_SCOPES if scopes is None else scopes
    banks = {init.name for init in model.graph.initializer if init.name.endswith(BANK_SUFFIX)}
    return [
        node.name
        for node in model.graph.node
        if any(scope in node.name for scope in scopes) or (node.op_type == "MatMul" and banks & set(node.input))
    ]


class _Windows:
    """onnxruntime's `CalibrationDataReader`: one window at a time."""

    def __init__(self, windows: Sequence[np.ndarray]) -> None:
        self.windows = iter(windows)

    def get_next(self) -> dict[str, np.ndarray] | None:
        window = next(self.windows, None)
        return None if window is None else {INPUT: window[None, :].astype(np.float32)}

    def rewind(self) -> None:  # (part of the reader's protocol; each reader is used once)
        pass


def quantize_int8(model: onnx.ModelProto, calibration: Sequence[np.ndarray], kernel_rows: Mapping[str, int]) -> onnx.ModelProto:
    """The static int8 (QDQ) form of `model`, calibrated on `calibration` windows `[samples]`
    (`kernel_rows`: see `compress_weights`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(prefix="dymn-int8-") as folder:
        source, output = Path(folder) / "float32.onnx", Path(folder) / "int8.onnx"
        onnx.save(model, source)  # (quantize_static would move the initializers of a ModelProto it is given out of it)
        quantize_static(
            source,
            output,
            _Windows(calibration),  # type: ignore[arg-type]
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=float_nodes(model),
            op_types_to_quantize=QUANTIZED_OPS,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
        quantized = onnx.load(output)
    compress_weights(quantized, kernel_rows)
    shorten_names(quantized)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    return quantized


def compress_weights(model: onnx.ModelProto, kernel_rows: Mapping[str, int]) -> None:
    """Store the float weights that the quantiser left float, but that are most of the file, as int8
    with one symmetric scale per row, dequantised in the graph: the kernel banks (`kernel_rows` gives
    the length of their rows: one kernel of one output channel) and the weights of the convolutions
    kept float (DyMN's depthwise banks: one scale per output channel)."""
    graph = model.graph
    conv_weights = {node.input[1] for node in graph.node if node.op_type == "Conv"}
    for init in list(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT or not (init.name in kernel_rows or init.name in conv_weights):
            continue
        weight = numpy_helper.to_array(init)
        rows = weight.reshape(-1, kernel_rows[init.name]) if init.name in kernel_rows else weight.reshape(weight.shape[0], -1)
        scale = np.maximum(np.abs(rows).max(axis=1), np.finfo(np.float32).tiny) / 127.0
        quantized = np.clip(np.round(rows / scale[:, None]), -127, 127).astype(np.int8)
        name = init.name
        graph.initializer.remove(init)
        graph.initializer.extend(
            [
                numpy_helper.from_array(quantized, name + "/int8"),
                numpy_helper.from_array(scale.astype(np.float32), name + "/scale"),
                numpy_helper.from_array(np.array(weight.shape, np.int64), name + "/shape"),
            ]
        )
        nodes = [
            helper.make_node("DequantizeLinear", [name + "/int8", name + "/scale"], [name + "/rows"], name=name + "/dq", axis=0),
            helper.make_node("Reshape", [name + "/rows", name + "/shape"], [name], name=name + "/reshape"),
        ]
        for node in reversed(nodes):  # (first: the graph stays topologically sorted)
            graph.node.insert(0, node)


def shorten_names(model: onnx.ModelProto) -> None:
    """Give every tensor and node a short name (the graph's inputs and outputs keep theirs): the
    quantiser adds several tensors per quantised value, and their long names were a fifth of the file."""
    graph = model.graph
    kept = {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if name in kept:
            return name
        return names.setdefault(name, format(len(names), "x"))

    for init in graph.initializer:
        init.name = short(init.name)
    for n, node in enumerate(graph.node):
        node.name = f"n{n:x}"
        node.input[:] = [short(i) for i in node.input]
        node.output[:] = [short(o) for o in node.output]
    del graph.value_info[:]


def measure_agreement(
    float_graph: bytes, int8_graph: bytes, held_out: Sequence[np.ndarray], *, activation: str = "sigmoid"
) -> Agreement:
    """Run both graphs on the held-out windows (batch 1, one thread) and compare their scores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = [ort.InferenceSession(g, options, providers=["CPUExecutionProvider"]) for g in (float_graph, int8_graph)]
    scores, seconds = [], []
    for session in sessions:
        session.run([LOGITS], {INPUT: held_out[0][None]})  # (warm-up: first-call allocations)
        start = time.perf_counter()
        logits = np.concatenate([session.run([LOGITS], {INPUT: w[None]})[0] for w in held_out])
        seconds.append(time.perf_counter() - start)
        scores.append(_activate(logits.astype(np.float64), activation))
    reference, quantized = scores
    top = min(10, reference.shape[1])
    overlaps = [len(set(np.argsort(-r)[:top]) & set(np.argsort(-q)[:top])) / top for r, q in zip(reference, quantized)]
    difference = np.abs(reference - quantized)
    return Agreement(
        windows=len(held_out),
        top1=float(np.mean(reference.argmax(1) == quantized.argmax(1))),
        top10=float(np.mean(overlaps)),
        mean_difference=float(difference.mean()),
        max_difference=float(difference.max()),
        size_ratio=len(int8_graph) / len(float_graph),
        speed_ratio=seconds[0] / seconds[1],
    )


def _activate(logits: np.ndarray, activation: str) -> np.ndarray:
    if activation == "softmax":
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))
