"""`Tagger.tag_many` on a Ray cluster (`--ray`): the stages of `inference.distributed`, the results
of the local tagger.

`RayTagger` is an `AudioTagger`, so `run.runner.label_inputs` drives it like the local tagger: the
same writers, `--resume`, progress, summary and exit codes, and a bad input is one failure record
while the run goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dymn_cli.audio.uris import is_uri
from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.engine_tagger import hop_for
from dymn_cli.errors import GraphNotCheckpoint, UsageError
from dymn_cli.inference.distributed import RAY_BATCH_SIZE, RayOptions, RayPipeline
from dymn_cli.inference.pipeline import Failure, PipelineStats
from dymn_cli.inference.worker_pool import Decoding
from dymn_cli.models.ensemble import load_members
from dymn_cli.models.head import ClassifierHead, load_head
from dymn_cli.results import AGGREGATES, TagFailure, TagResult, build_result
from dymn_cli.tagging import AudioTagger, source_name


class RayTagger(AudioTagger):
    """`Tagger.tag_many` on a Ray cluster: the same results, input by input, in input order.

    The model is resolved once, on the driver (a registry name is downloaded there, not on every
    node), and shipped to the actors through Ray's object store.
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
        ray: RayOptions = RayOptions(),
        head: ClassifierHead | str | Path | None = None,
        with_audioset: bool = False,
    ) -> None:
        if head is not None and not isinstance(head, ClassifierHead):
            head = load_head(head)  # (before the model: a bad head file fails fast)
        batch_size = RAY_BATCH_SIZE if batch_size is None else batch_size
        try:
            members = load_members(
                model=None if weights is not None else model, weights=weights, sha256=sha256, progress=progress
            )
        except GraphNotCheckpoint as error:
            raise error.instead(
                f"RayTagger runs PyTorch checkpoints; a graph runs in dymn_cli.OnnxTagger({str(error.path)!r})"
            ) from None
        self.name = members.name
        self.records = members.records
        self.weight_files = members.paths
        self.embedding_dim = int(members.network.embedding_dim)
        self.frontend_config = members.frontend
        self.batch_size = batch_size
        self.classes = Vocabulary.audioset()
        if head is not None:
            self.use_head(head, with_audioset=with_audioset)
        self.pipeline = RayPipeline(
            members.network,
            frontend=members.frontend,
            options=ray,
            device=device,
            precision=precision,
            compile=compile,
            batch_size=batch_size,
        )

    @property
    def sample_rate(self) -> int:
        return self.frontend_config.sample_rate

    def tag_many(
        self,
        sources: Iterable[Any],
        *,
        sample_rate: int | None = None,
        window: float = 10.0,
        hop: float | None = None,
        aggregate: str = "mean",
        workers: int = 0,
        stats: PipelineStats | None = None,
        decoding: Decoding | None = None,
        timeout: float | None = None,
    ) -> Iterator[TagResult | TagFailure]:
        """Tag paths, URIs or encoded bytes; one outcome per input, in input order, as they finish.

        `sample_rate`, `workers`, `stats` and `decoding` are accepted for `Tagger` compatibility:
        arrays are not taken (decode on the cluster), Ray decides how many decode tasks run, the time
        spent on the cluster's nodes is not measured here (`stats` stays as it was), and a decoding
        started on this machine is stopped (the cluster decodes). `timeout` is checked by each decode
        task as it decodes (a task stuck inside a decoder is not killed)."""
        if decoding is not None:
            decoding.close()
        if aggregate not in AGGREGATES:
            raise UsageError(f"unknown aggregate {aggregate!r}: use {' or '.join(AGGREGATES)}")
        hop = hop_for(window, hop, default_hop=10.0)  # (the default window's)
        grid = self.frontend_config.window_grid(window=window, hop=hop)
        names: list[str] = []
        items: list[dict[str, Any]] = []
        for index, source in enumerate(sources):
            names.append(source_name(source))
            items.append(_item(index, source))
        for outcome in self.pipeline.run(items, grid=grid, sample_rate=self.sample_rate, timeout=timeout):
            name = names[outcome.index]
            if isinstance(outcome, Failure):
                yield TagFailure(name, outcome.reason)
            else:
                yield build_result(
                    name,
                    outcome,
                    grid=grid,
                    aggregate=aggregate,
                    sample_rate=self.sample_rate,
                    classes=self.classes,
                    head=self.head,
                )


def _item(index: int, source: Any) -> dict[str, Any]:
    """One input row: a path (made absolute, since tasks may run in another folder), a URI, or bytes."""
    if isinstance(source, Path):
        source = os.fspath(source)
    if hasattr(source, "read") and not isinstance(source, (str, bytes)):
        source = source.read()  # a stream such as standard input: its bytes travel with the row
    if isinstance(source, (bytes, bytearray, memoryview)):
        return {"index": index, "path": "", "data": bytes(source), "name": "<stdin>"}
    if isinstance(source, str):
        path = source if is_uri(source) else os.path.abspath(source)
        return {"index": index, "path": path, "data": b"", "name": source}
    raise UsageError(f"the Ray runner tags paths, URIs or bytes, not {type(source).__name__} objects")
