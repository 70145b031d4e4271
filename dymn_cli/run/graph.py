"""`--weights MODEL.onnx`: a run over an exported graph in onnxruntime, without torch.

The graph is opened and checked when the options are (before any input is read or output opened),
since it says which classes the run reports and its default window and hop.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dymn_cli.errors import UsageError
from dymn_cli.onnx_tagger import OnnxTagger, is_graph
from dymn_cli.run.options import HeadChoice, choose_head, window_and_hop

__all__ = ["graph_weights", "open_graph"]


def graph_weights(weights: Sequence[str | os.PathLike[str]] | None) -> Path | None:
    """The ONNX graph among `--weights`, or None where they are checkpoints; a graph runs alone."""
    graphs = [Path(w) for w in weights or () if is_graph(w)]
    if not graphs:
        return None
    if len(weights or ()) > 1:
        raise UsageError("an ONNX graph runs alone: give one --weights FILE.onnx (export an ensemble as one graph)")
    return graphs[0]


def open_graph(
    graph: str | os.PathLike[str],
    *,
    head: str | os.PathLike[str] | None = None,
    with_audioset: bool = False,
    window: float | None = None,
    hop: float | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    sha256: str | None = None,
    precision: str = "auto",
    compile: bool = False,
    ray: bool = False,
) -> tuple[HeadChoice, OnnxTagger]:
    """Open and check `graph` (and `head`); the run's classes and its window and hop: those given, else
    the head's, else the graph's. Refuses the options of the torch engine."""
    refused = {"--ray": ray, "--compile": compile, f"--precision {precision}": precision not in ("auto", "float32")}
    unused = [name for name, given in refused.items() if given]
    if unused:
        raise UsageError(f"{', '.join(unused)}: for the torch engine only; an ONNX graph runs in onnxruntime, as it was exported")
    chosen = choose_head(head, with_audioset=with_audioset, window=window, hop=hop) if head is not None else None
    tagger = OnnxTagger(
        graph,
        device=device,
        batch_size=batch_size,
        sha256=sha256,
        head=chosen.head if chosen is not None else None,
        with_audioset=with_audioset,
    )
    if chosen is not None:
        return HeadChoice(chosen.head, tagger.classes, chosen.window, chosen.hop), tagger
    return HeadChoice(
        None, tagger.classes, *window_and_hop(window, hop, default_window=tagger.default_window, default_hop=tagger.default_hop)
    ), tagger
