"""int8 forms of an exported graph, and their agreement with float32 on held-out windows.

`static` (the default): onnxruntime's static quantisation (QDQ), int8 weights per output channel and
uint8 activations calibrated on the user's audio, for the convolutions and matrix products. What stays
float32 was chosen by measurement (README "Export to ONNX"): the front end (a log of quantised power is
useless), the depthwise convolutions (quantised, they made dymn04 2.6x slower in onnxruntime and cost the
most agreement), DyMN's per-sample products, the first convolution (its input is the log-mel) and the
classifier. `weights`: no activation is quantised, the arithmetic stays float32.

Either way every weight left float32 is then stored as int8 with one scale per output channel and
dequantised in the graph (`compress_weights`). That matters for DyMN's kernel banks (most of its
weights): they feed `attention @ bank`, a MatMul of which onnxruntime's quantiser would store one float
scale per column, the size of the bank again.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dymn_cli.graph_metadata import INPUT, LOGITS
from dymn_cli.wording import counted

FLOAT_SCOPES = ("/frontend/", "conv/MatMul_1", "depth_conv/", "/head/", "/in_c/", "/features.0/")
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]
"""Only the products are quantised: the elementwise steps between them (Dy-ReLU, gates, hardswish)
would only add quantise/dequantise pairs that onnxruntime cannot fuse."""
BANK_SUFFIX = ".bank"
INT8_MODES = ("static", "weights")


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
            f"int8 against float32 on {counted(self.windows, 'held-out calibration window')}:",
            # (the count beside the figure: 100 % on 3 windows says much less than on 300)
            f"  top-1 agreement {self.top1:.1%} ({round(self.top1 * self.windows)} of {counted(self.windows, 'window')}), "
            f"mean top-10 overlap {self.top10:.1%}",
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
        if any(scope in node.name for scope in scopes)
        or (node.op_type == "MatMul" and banks & set(node.input))
        or (node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute))
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


def quantize_int8(
    model: onnx.ModelProto, calibration: Sequence[np.ndarray], kernel_rows: Mapping[str, int], *, mode: str = "static"
) -> onnx.ModelProto:
    """The int8 form of `model` (`kernel_rows`: see `compress_weights`), in one of `INT8_MODES`:
    `static`, activations and weights of the products quantised (QDQ), calibrated on `calibration`
    windows `[samples]`; `weights`, every weight stored as int8 and the arithmetic left in float32."""
    if mode not in INT8_MODES:
        raise ValueError(f"unknown int8 mode {mode!r}")
    if mode == "weights":
        quantized = onnx.ModelProto()
        quantized.CopyFrom(model)
        compress_weights(quantized, kernel_rows)
        shorten_names(quantized)
        return quantized
    with tempfile.TemporaryDirectory(prefix="dymn-int8-") as folder:
        source, output = Path(folder) / "float32.onnx", Path(folder) / "int8.onnx"
        onnx.save(model, source)  # (quantize_static would move the initializers of a ModelProto it is given out of it)
        with _quiet_root_logger():  # (its advice to pre-process goes to the root logger, our stderr)
            _quantize_static(source, output, calibration, float_nodes(model))
        quantized = onnx.load(output)
    compress_weights(quantized, kernel_rows)
    shorten_names(quantized)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    return quantized


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _quantize_static(source: Path, output: Path, calibration: Sequence[np.ndarray], exclude: list[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        source,
        output,
        _Windows(calibration),  # type: ignore[arg-type]
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        op_types_to_quantize=QUANTIZED_OPS,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
    )


def compress_weights(model: onnx.ModelProto, kernel_rows: Mapping[str, int]) -> None:
    """Store the float weights left in `model` as int8 with one symmetric scale per output channel,
    dequantised in the graph: the kernel banks (`kernel_rows` gives the length of their rows: one
    kernel of one output channel), and the weights of Conv, Gemm and MatMul nodes that stayed float
    (the front end's mel bands are MatMul inputs of another place, and stay float32)."""
    graph = model.graph
    axes: dict[str, int] = {}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 1:
            transposed = node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute)
            axes[node.input[1]] = 1 if transposed else 0
        elif node.op_type == "MatMul":
            axes[node.input[1]] = 1
    for init in list(graph.initializer):
        big = int(np.prod(init.dims)) >= MIN_COMPRESSED
        if init.data_type != onnx.TensorProto.FLOAT or not big or not (init.name in kernel_rows or init.name in axes):
            continue
        weight = numpy_helper.to_array(init)
        if init.name in kernel_rows:
            stored, axis = weight.reshape(-1, kernel_rows[init.name]), 0
        else:
            stored, axis = weight, axes[init.name]
        if stored.ndim < 2:
            continue
        _replace_by_int8(graph, init, stored, axis, reshape_to=weight.shape if stored.shape != weight.shape else None)


MIN_COMPRESSED = 1024
"""Weights of fewer values stay float32: the dequantisation nodes would outweigh them."""


def _replace_by_int8(
    graph: onnx.GraphProto, init: onnx.TensorProto, weight: np.ndarray, axis: int, reshape_to: tuple | None
) -> None:
    others = tuple(d for d in range(weight.ndim) if d != axis)
    scale = np.maximum(np.abs(weight).max(axis=others), np.finfo(np.float32).tiny) / 127.0
    shape = [1] * weight.ndim
    shape[axis] = -1
    quantized = np.clip(np.round(weight / scale.reshape(shape)), -127, 127).astype(np.int8)
    name = init.name
    graph.initializer.remove(init)
    graph.initializer.extend(
        [numpy_helper.from_array(quantized, name + "/int8"), numpy_helper.from_array(scale.astype(np.float32), name + "/scale")]
    )
    dequantized = name + "/rows" if reshape_to is not None else name
    nodes = [helper.make_node("DequantizeLinear", [name + "/int8", name + "/scale"], [dequantized], name=name + "/dq", axis=axis)]
    if reshape_to is not None:
        graph.initializer.append(numpy_helper.from_array(np.array(reshape_to, np.int64), name + "/shape"))
        nodes.append(helper.make_node("Reshape", [dequantized, name + "/shape"], [name], name=name + "/reshape"))
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
