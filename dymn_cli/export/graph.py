"""One ONNX graph from waveform to scores: the export front end, the network (or ensemble) and an
optional classification head, written with the TorchScript exporter (`dynamo=False`: it takes the
batch and the length as dynamic axes; the dynamo exporter fixed them in our trials), then given the
contract of `dymn_cli.graph_metadata`: input `waveform` `[batch, samples]`, outputs `logits` and
`embedding`, and the metadata. `onnx.checker` checks the result.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import Tensor, nn

from dymn_cli.export.frontend import DFT_BASIS, ExportLogMel, window_taps
from dymn_cli.graph_metadata import EMBEDDING, INPUT, LOGITS, GraphMetadata
from dymn_cli.models.frontend_config import FrontEndConfig
from dymn_cli.models.head import ClassifierHead
from dymn_cli.version import __version__

OPSET = 17
"""The opset the graphs are written in (17: LayerNormalization, DFT; ORT >= 1.13 runs it)."""


class ExportHeadLayers(nn.Module):
    """A classification head (`ClassifierHead`) on the embedding: standardise, then its layers (ReLU
    between them). Its activation is the graph's `activation` metadata, applied by the runner."""

    def __init__(self, head: ClassifierHead) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(np.asarray(head.mean, dtype=np.float32)))
        self.register_buffer("scale", torch.from_numpy(np.asarray(head.scale, dtype=np.float32)))
        self.layers = nn.ModuleList()
        for weight, bias in head.layers:
            layer = nn.Linear(*weight.shape)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(np.asarray(weight, dtype=np.float32)).t())
                layer.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))
            self.layers.append(layer)

    def forward(self, embedding: Tensor) -> Tensor:
        x = (embedding - self.mean) / self.scale
        for n, layer in enumerate(self.layers):
            x = layer(torch.relu(x) if n else x)
        return x


class WaveformTagger(nn.Module):
    """`[B, N]` waveform -> (logits `[B, K]`, embedding `[B, C]`): front end, network, head."""

    def __init__(self, network: nn.Module, frontend: FrontEndConfig, head: ClassifierHead | None = None) -> None:
        super().__init__()
        self.frontend = ExportLogMel(frontend)
        self.network = network
        self.head = ExportHeadLayers(head) if head is not None else None

    def forward(self, waveform: Tensor) -> tuple[Tensor, Tensor]:
        logits, embedding = self.network(self.frontend(waveform))
        if self.head is not None:
            logits = self.head(embedding)
        return logits, embedding


def export_graph(tagger: WaveformTagger, metadata: GraphMetadata, *, example_seconds: float = 2.0) -> onnx.ModelProto:
    """The checked ONNX graph of `tagger`, with `metadata` (its `opset` set to `OPSET`) in `metadata_props`."""
    config = tagger.frontend.config
    example = torch.zeros(2, int(example_seconds * config.sample_rate))
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the exporter's notes on traced shapes and deprecations)
        torch.onnx.export(
            tagger.eval(),
            (example,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=[LOGITS, EMBEDDING],
            dynamic_axes={INPUT: {0: "batch", 1: "samples"}, LOGITS: {0: "batch"}, EMBEDDING: {0: "batch"}},
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    compute_dft_basis(model, config)
    model.producer_name = "dymn-cli"
    model.producer_version = __version__  # (torch.onnx.export writes its own version: not what made the graph)
    stated = GraphMetadata(**{**metadata.__dict__, "opset": OPSET})
    helper.set_model_props(model, stated.to_props())
    onnx.checker.check_model(model, full_check=True)
    return model


def compute_dft_basis(model: onnx.ModelProto, config: FrontEndConfig) -> None:
    """Replace the DFT basis initializer (4 MB) by nodes that compute it: the windowed cos and -sin of
    `2 pi (k * n mod n_fft) / n_fft` for bins k and the samples n of the frame the window covers.
    onnxruntime folds them once, when a session starts; the file keeps only the window (3 kB)."""
    graph = model.graph
    found = [init for init in graph.initializer if init.name.endswith(DFT_BASIS)]
    if len(found) != 1:
        raise RuntimeError(f"the exported graph has {len(found)} DFT basis initializers, expected 1")
    basis = found[0]
    graph.initializer.remove(basis)
    bins, n_fft = config.n_fft // 2 + 1, config.n_fft
    prefix = "/frontend/dft_basis/"

    def constant(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(value, prefix + name))
        return prefix + name

    taps, left = window_taps(config)
    window = constant("window", taps.numpy().astype(np.float32))
    zero, one = constant("zero", np.array(0.0, np.float32)), constant("one", np.array(1.0, np.float32))
    first, end = (
        constant("first", np.array(float(left), np.float32)),
        constant("end", np.array(float(left + len(taps)), np.float32)),
    )
    nodes = [
        ("Range", [first, end, one], "samples", {}),
        ("Range", [zero, constant("bins", np.array(float(bins), np.float32)), one], "bin_range", {}),
        ("Unsqueeze", ["bin_range", constant("axis_1", np.array([1], np.int64))], "bin_column", {}),
        ("Mul", ["bin_column", "samples"], "products", {}),  # integers below 2^24: exact in float32
        ("Mod", ["products", constant("n_fft_mod", np.array(float(n_fft), np.float32))], "turns", {"fmod": 1}),
        ("Mul", ["turns", constant("radians", np.array(2 * math.pi / n_fft, np.float32))], "angles", {}),
        ("Cos", ["angles"], "cosines", {}),
        ("Sin", ["angles"], "sines", {}),
        ("Mul", ["cosines", window], "real_rows", {}),
        ("Mul", ["sines", window], "sine_rows", {}),
        ("Neg", ["sine_rows"], "imaginary_rows", {}),
        ("Concat", ["real_rows", "imaginary_rows"], "rows", {"axis": 0}),
    ]
    outputs = {output for _, _, output, _ in nodes}
    made = [
        helper.make_node(
            op, [prefix + i if i in outputs else i for i in inputs], [prefix + output], name=prefix + output, **attributes
        )
        for op, inputs, output, attributes in nodes
    ]
    made.append(helper.make_node("Unsqueeze", [prefix + "rows", prefix + "axis_1"], [basis.name], name=prefix + "basis"))
    for node in reversed(made):  # (before every node: the graph stays topologically sorted)
        graph.node.insert(0, node)
