"""What every tagger offers, on this machine (`tagger.Tagger`) or on a Ray cluster
(`ray_tagger.RayTagger`): the run takes one of them, or a factory that builds one, and tells
which it got from this base class alone. Free of torch, so that a run can check its inputs and
start decoding before torch is imported.
"""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.models.head import Backbone, ClassifierHead, load_head
from dymn_cli.models.identity import Checkpoint, local_checkpoint, model_label
from dymn_cli.models.weights import sha256_file
from dymn_cli.results import TagFailure, TagResult

if TYPE_CHECKING:
    from dymn_cli.inference.pipeline import PipelineStats
    from dymn_cli.inference.worker_pool import Decoding


class AudioTagger(ABC):
    """A model ready to tag: its `name`, the `sample_rate` it listens at, and `tag_many`.

    It reports the classes of `classes`: the AudioSet classes, or a classification head's (`use_head`),
    alone or after them. Subclasses set `weight_files` (the checkpoint files, for `backbone`) and
    `embedding_dim`, and build their results with `classes` and `head`."""

    name: str
    weight_files: Sequence[Path] = ()
    records: Sequence[Any] = ()  # each member's registry record (None: a local checkpoint file)
    embedding_dim: int
    head: ClassifierHead | None = None
    classes: Vocabulary = Vocabulary.audioset()
    takes_decoding: ClassVar[bool] = False
    """Whether `tag_many` can take over a decoding started on this machine before the tagger was
    built (`decoding=`); a tagger that decodes elsewhere (on a cluster) cannot."""

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """The rate the model listens at; inputs are resampled to it."""

    @abstractmethod
    def tag_many(
        self,
        sources: Iterable[Any],
        *,
        sample_rate: int | None = None,
        window: float = 10.0,
        hop: float = 10.0,
        aggregate: str = "mean",
        workers: int = 0,
        stats: PipelineStats | None = None,
        decoding: Decoding | None = None,
        timeout: float | None = None,
    ) -> Iterator[TagResult | TagFailure]:
        """One outcome per input, in input order; a bad input is a `TagFailure` and the others go on;
        one that takes longer than `timeout` seconds fails with "timed out after N s"."""

    @functools.cached_property
    def backbone(self) -> Backbone:
        """The network as a head file records it: name, SHA-256 of each checkpoint file, embedding width
        (hashed on first use: only runs with a head pay for it)."""
        return Backbone(self.name, tuple(sha256_file(p) for p in self.weight_files), int(self.embedding_dim))

    @functools.cached_property
    def checkpoints(self) -> tuple[Checkpoint, ...]:
        """Each member of the network as outputs record it: a published model by its name, a local
        checkpoint file by its name and SHA-256 (see `dymn_cli.models.identity`)."""
        records = self.records or [None] * len(self.weight_files)
        return tuple(
            Checkpoint(record.name) if record is not None else local_checkpoint(path)
            for record, path in zip(records, self.weight_files)
        )

    @property
    def model_label(self) -> str:
        """The network as every output names it: `dymn10_as`, or `dymn04.pt@sha256:1a2b3c4d5e6f` for a local file."""
        return model_label(self.checkpoints) if self.weight_files else self.name  # (a stand-in without files: its name)

    def use_head(self, head: ClassifierHead | str | os.PathLike[str], *, with_audioset: bool = False) -> ClassifierHead:
        """Score a head's classes from now on (after the AudioSet classes if `with_audioset`).
        Raises `HeadError` if the head was trained on another network. Returns the head."""
        loaded = head if isinstance(head, ClassifierHead) else load_head(head)
        loaded.check_backbone(self.backbone)
        self.head = loaded
        self.classes = Vocabulary.with_head(loaded.classes, audioset=with_audioset)
        return loaded


def source_name(source: Any) -> str:
    """How results and messages name an input given to a tagger: its path, or what it is."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    if isinstance(source, np.ndarray) or type(source).__module__.split(".")[0] == "torch":
        return "<array>"
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"
