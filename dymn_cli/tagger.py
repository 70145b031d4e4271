"""The Python API that the CLI and users share: `Tagger(...).tag(...)` -> `TagResult`, with the
torch engine (`onnx_tagger.OnnxTagger` runs an exported graph in onnxruntime instead)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.engine_tagger import LIVE_HOP, EngineTagger
from dymn_cli.errors import GraphNotCheckpoint
from dymn_cli.inference.engine import InferenceEngine
from dymn_cli.inference.script_rerun import exit_if_script_rerun
from dymn_cli.models.ensemble import load_members
from dymn_cli.models.head import ClassifierHead, load_head
from dymn_cli.results import AGGREGATES, TagFailure, TagResult, build_result, rank_classes

__all__ = ["AGGREGATES", "LIVE_HOP", "TagSource", "TagFailure", "TagResult", "Tagger", "build_result", "rank_classes"]

TagSource = str | Path | bytes | BinaryIO | np.ndarray | torch.Tensor
"""What `Tagger` tags: a path, the bytes of a file, a binary file object, or a waveform with its rate."""


class Tagger(EngineTagger):
    """Tags audio with a published model (or an ensemble of them).

    >>> tagger = Tagger("dymn10_as")                      # doctest: +SKIP
    >>> tagger.tag("song.wav", window=10.0, hop=5.0).top(5)  # doctest: +SKIP

    With a classification head (`dymn-tag train`, `dymn_cli.transfer.train_head`), results score the
    head's classes, alone or after the AudioSet classes (`with_audioset=True`):

    >>> Tagger("dymn10_as", head="frogs.safetensors").tag("pond.wav").top(3)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | Sequence[str] | None = "dymn10_as",
        *,
        weights: str | Path | Sequence[str | Path] | None = None,
        device: str = "auto",
        batch_size: int | None = None,
        precision: str = "auto",
        compile: bool = False,
        sha256: str | None = None,
        progress: bool = False,
        head: ClassifierHead | str | Path | None = None,
        with_audioset: bool = False,
    ) -> None:
        exit_if_script_rerun()  # (a script without `if __name__ == "__main__":`, run again in a decode worker)
        if head is not None and not isinstance(head, ClassifierHead):
            head = load_head(head)  # (before the model: a bad head file fails fast)
        try:
            members = load_members(
                model=None if weights is not None else model, weights=weights, sha256=sha256, progress=progress
            )
        except GraphNotCheckpoint as error:
            raise error.instead(f"a graph runs in dymn_cli.OnnxTagger({str(error.path)!r})") from None
        self.name = members.name
        self.weight_files = members.paths
        self.embedding_dim = int(members.network.embedding_dim)
        self.records = members.records
        self.network = members.network
        self.frontend_config = members.frontend
        self.engine = InferenceEngine(
            self.network, frontend=self.frontend_config, device=device, precision=precision, compile=compile
        )
        # (None: as many windows as keep the engine's lanes efficient, 16 with two lanes)
        self.batch_size = self.engine.preferred_batch_size if batch_size is None else batch_size
        self.head: ClassifierHead | None = None
        self.classes = Vocabulary.audioset()
        if head is not None:
            self.use_head(head, with_audioset=with_audioset)

    @property
    def device(self) -> torch.device:
        return self.engine.device
