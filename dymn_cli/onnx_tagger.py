"""`OnnxTagger`: the tagger over a graph that `dymn-tag export` wrote, in onnxruntime and without torch.

It tags as `tagger.Tagger` does (files, streams, arrays, live sources, through the same pipeline and
decode workers) and reports the graph's own classes, as its metadata lists them: the AudioSet
classes, a head's classes, or both. Its default window and hop are the graph's.

>>> OnnxTagger("dymn10.onnx").tag("song.wav").top(5)  # the graph's window and hop  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.engine_tagger import EngineTagger
from dymn_cli.errors import GraphError, UsageError, WeightsError
from dymn_cli.graph_metadata import GraphMetadata
from dymn_cli.inference.onnx_engine import OnnxEngine
from dymn_cli.inference.script_rerun import exit_if_script_rerun
from dymn_cli.models.frontend_config import FrontEndConfig
from dymn_cli.models.head import Backbone, ClassifierHead, load_head, same_but_for_case
from dymn_cli.models.weights import sha256_file
from dymn_cli.results import score_windows, sigmoid

GRAPH_SUFFIX = ".onnx"


def is_graph(path: str | os.PathLike[str]) -> bool:
    """Whether `--weights` names an ONNX graph (by its suffix) rather than a checkpoint."""
    return Path(path).suffix.lower() == GRAPH_SUFFIX


class OnnxTagger(EngineTagger):
    """Tags audio with an exported graph (`dymn-tag export`) in onnxruntime.

    `device`: auto (CUDA where onnxruntime has it), cpu or cuda. `lanes`: CPU threads, each running a
    share of a batch (default: `OMP_NUM_THREADS`, else the CPUs this process may use). `sha256`: the
    graph file's expected SHA-256. `head`: a classification head trained on the embeddings of the
    checkpoint the graph was exported from, for a graph of the AudioSet classes.
    """

    def __init__(
        self,
        graph: str | os.PathLike[str],
        *,
        device: str = "auto",
        batch_size: int | None = None,
        lanes: int | None = None,
        sha256: str | None = None,
        head: ClassifierHead | str | os.PathLike[str] | None = None,
        with_audioset: bool = False,
    ) -> None:
        exit_if_script_rerun()  # (a script without `if __name__ == "__main__":`, run again in a decode worker)
        if head is not None and not isinstance(head, ClassifierHead):
            head = load_head(head)  # (before the graph: a bad head file fails fast)
        path = Path(graph)
        self.engine = OnnxEngine(path, device=device, lanes=lanes)
        if sha256 is not None and (actual := sha256_file(path)) != sha256.lower():
            raise WeightsError(f"{path} does not match the expected SHA-256: it is {actual}, expected {sha256}")
        self.metadata: GraphMetadata = self.engine.metadata
        self.name = path.stem
        self.weight_files = [path]
        self.embedding_dim = self.engine.embedding_dim
        self.frontend_config = FrontEndConfig(sample_rate=self.metadata.sample_rate)
        try:  # (its default window and hop must be ones a run takes: the error names the graph, not an option)
            self.frontend_config.window_grid(window=self.metadata.window, hop=self.metadata.hop)
        except UsageError as error:
            raise GraphError(f"{path}: its default window and hop cannot be used: {error}") from None
        self.batch_size = self.engine.preferred_batch_size if batch_size is None else batch_size
        self.graph_classes = graph_vocabulary(self.metadata, os.fspath(path))
        self.classes = self.graph_classes
        self.head = None
        if head is not None:
            if self.graph_classes != Vocabulary.audioset():
                raise GraphError(f"{path} scores its own classes: a --head goes with a graph of the AudioSet classes")
            self.use_head(head, with_audioset=with_audioset)
        elif with_audioset:
            raise GraphError(f"{path}: --with-audioset goes with --head; a graph scores the classes it was exported with")

    @property
    def device(self) -> str:
        return self.engine.device

    @property
    def default_window(self) -> float:  # type: ignore[override]
        """The graph's window (seconds): the one it was exported for."""
        return self.metadata.window

    @property
    def default_hop(self) -> float:  # type: ignore[override]
        return self.metadata.hop

    @functools.cached_property
    def backbone(self) -> Backbone:
        """The checkpoint(s) the graph was exported from, as a head file records its network."""
        return Backbone(self.metadata.model, tuple(self.metadata.checkpoint_sha256.split("+")), self.embedding_dim)

    def score_windows(self, logits: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """The graph's scores: a sigmoid for the AudioSet classes, its activation for its own classes."""
        if self.head is not None:
            return score_windows(logits, embeddings, classes=self.classes, head=self.head)
        audioset = self.graph_classes.n_audioset
        own = logits[:, audioset:]
        own_scores = softmax(own) if self.metadata.activation == "softmax" else sigmoid(own)
        return np.concatenate([sigmoid(logits[:, :audioset]), own_scores], axis=1) if audioset else own_scores


def graph_vocabulary(metadata: GraphMetadata, source: str) -> Vocabulary:
    """The classes a graph scores: the AudioSet classes where its MIDs begin with all of them in order
    (then, a head's classes after them), else its own classes by name."""
    audioset = Vocabulary.audioset()
    n_audioset = len(audioset) if tuple(c.mid for c in audioset) == metadata.mids[: len(audioset)] else 0
    if n_audioset and metadata.activation != "sigmoid" and n_audioset == len(metadata.mids):
        raise GraphError(f"{source}: the AudioSet classes are scored with a sigmoid, not a {metadata.activation}")
    if n_audioset == len(metadata.labels):
        return audioset
    own = metadata.labels[n_audioset:]
    if not all(label.strip() for label in own):
        raise GraphError(f"{source}: a label of its classes is empty")
    if unprintable := next((label for label in own if not label.isprintable()), None):  # (a line break splits rows)
        raise GraphError(f"{source}: the label {unprintable!r} holds a line break or an invisible character")
    if same := same_but_for_case(own):  # (one class to --labels and one column in SQL, as for a head's)
        raise GraphError(f"{source}: its labels must differ in more than case: {same}")
    return Vocabulary.with_head(own, audioset=n_audioset > 0)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
