"""Labelling on a Ray cluster: the single-machine stages, spread out by Ray Data.

    inputs -> ray.data.from_items -> flat_map(decode_job)      decode + window, CPU tasks anywhere
           -> map_batches(_InferenceActor)                     InferenceEngine, a pool of actors that
                                                               each build the model once (a GPU each)
           -> iter_batches on the driver                       windows regrouped per input (as
                                                               pipeline.run_pipeline does), results
                                                               built by results.build_result

`RayTagger` has the `tag_many` of `Tagger`, so `run.label_inputs` drives it like the local tagger:
the same writers, `--resume`, progress, summary and exit codes, and a bad input is one failure
record while the run goes on. Ray is imported only here (`pip install 'dymn-cli[ray]'`).

Inputs are paths, which every node must see at the same place (a shared filesystem), or URIs that
pyarrow reads (`s3://...`), which each decode task fetches itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .decoding import DONE, ERROR, WINDOW, DecodeJob, decode_job
from .pipeline import Failure, PipelineStats, _outcome, _Pending
from .ensemble import load_members
from .errors import UsageError
from .labels import audioset_classes
from .remote import is_uri
from .results import AGGREGATES, TagFailure, TagResult, build_result
from .tagger import _describe
from .windows import WindowGrid

log = logging.getLogger("dymn_cli")

PRECISIONS = ("auto", "float32", "float16", "bfloat16")
RAY_BATCH_SIZE = 16  # windows per actor call (an actor's lanes are not known on the driver)
MAX_INPUT_BLOCKS = 2000  # decode tasks: one per input up to this many inputs, then inputs share tasks


def import_ray() -> Any:
    """`ray` with Ray Data, or a `UsageError` that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise UsageError("--ray needs Ray: pip install 'dymn-cli[ray]'") from error
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run.

    `address`: `local` starts a Ray instance for this process; `auto` joins the cluster running on
    this machine (as under `ray job submit`); anything else is a cluster address (`host:6379`,
    `ray://host:10001`). Ignored when this process is already connected (`ray.init` was called).
    """

    address: str = "local"
    actors: int | None = None  # inference actors; None: one per GPU of the cluster, else 1
    actor_cpus: float = 1.0  # CPUs each actor reserves (its torch threads)
    block_seconds: float = 60.0  # decode stream block, as in the single-machine pipeline


def connect(address: str) -> Any:
    """Join (or start) the Ray instance that `address` names, unless this process already has one."""
    ray = import_ray()
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
            else:
                ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise UsageError(f"--ray {address}: cannot connect: {' '.join(str(error).split())}") from error
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # dymn-tag shows its own
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled"
    return ray


class RayTagger:
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
    ) -> None:
        batch_size = RAY_BATCH_SIZE if batch_size is None else batch_size
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise UsageError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
        if device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"unknown device {device!r} for --ray: use auto, cpu or cuda (one GPU per actor)")
        if ray.actors is not None and ray.actors < 1:
            raise UsageError(f"--actors must be at least 1, got {ray.actors}")
        self.options = ray
        self._ray = connect(ray.address)
        gpus = int(self._ray.cluster_resources().get("GPU", 0))
        if device == "cuda" and gpus == 0:
            raise UsageError("--device cuda was asked for, but the Ray cluster has no GPU")
        self.uses_gpu = gpus > 0 and device != "cpu"
        self.actors = ray.actors or (gpus if self.uses_gpu else 1)
        members = load_members(model=None if weights is not None else model, weights=weights, sha256=sha256, progress=progress)
        self.name = members.name
        self.records = members.records
        self.frontend_config = members.frontend
        self.batch_size = batch_size
        self.classes = audioset_classes()
        self._network = self._ray.put(members.network)
        self._engine_args = {
            "frontend": members.frontend,
            "device": "cuda" if self.uses_gpu else "cpu",
            "precision": precision,
            "compile": compile,
            "num_classes": members.network.num_classes,
            "embedding_dim": members.network.embedding_dim,
        }

    @property
    def sample_rate(self) -> int:
        return self.frontend_config.sample_rate

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
        timeout: float | None = None,
    ) -> Iterator[TagResult | TagFailure]:
        """Tag paths, URIs or encoded bytes; one outcome per input, in input order, as they finish.

        `sample_rate`, `workers` and `stats` are accepted for `Tagger` compatibility: arrays are not
        taken (decode on the cluster), Ray decides how many decode tasks run, and the time spent on
        the cluster's nodes is not measured here (`stats` stays as it was). `timeout` is checked by
        each decode task as it decodes (a task stuck inside a decoder is not killed)."""
        if aggregate not in AGGREGATES:
            raise UsageError(f"unknown aggregate {aggregate!r}: use {' or '.join(AGGREGATES)}")
        grid = WindowGrid.from_seconds(window=window, hop=hop, sample_rate=self.sample_rate)
        names: list[str] = []
        items: list[dict[str, Any]] = []
        for index, source in enumerate(sources):
            names.append(_describe(source))
            items.append(_item(index, source))
        if not items:
            return
        assembler = _Assembler()
        for batch in self._dataset(items, grid, timeout).iter_batches(batch_size=None, batch_format="numpy"):
            assembler.add(batch)
            for outcome in assembler.ready():
                name = names[outcome.index]
                if isinstance(outcome, Failure):
                    yield TagFailure(name, outcome.reason)
                else:
                    yield build_result(name, outcome, grid=grid, aggregate=aggregate, sample_rate=self.sample_rate, classes=self.classes)
        if assembler.next_index != len(items):  # cannot happen unless Ray lost rows
            raise RuntimeError(f"the Ray pipeline ended with {len(items) - assembler.next_index} inputs unfinished")

    def _dataset(self, items: list[dict[str, Any]], grid: WindowGrid, timeout: float | None = None) -> Any:
        ray = self._ray
        blocks = min(len(items), MAX_INPUT_BLOCKS)
        decoded = ray.data.from_items(items, override_num_blocks=blocks).flat_map(
            _decode_rows,
            fn_kwargs={
                "grid": grid, "sample_rate": self.sample_rate, "block_seconds": self.options.block_seconds, "timeout": timeout
            },
        )
        return decoded.map_batches(
            _InferenceActor,
            fn_constructor_kwargs={"network": [self._network], **self._engine_args},
            batch_size=grid.batch_size(self.batch_size),
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            num_cpus=self.options.actor_cpus,
            num_gpus=1 if self.uses_gpu else 0,
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


def _decode_rows(
    row: dict[str, Any], *, grid: WindowGrid, sample_rate: int, block_seconds: float, timeout: float | None = None
) -> Iterator[dict[str, Any]]:
    """flat_map body (a Ray task): one input -> its window rows, through `decoding.decode_job`.

    Rows keep one fixed shape, so Ray stores the windows as one tensor column: the `done` message
    rides on the input's last window (`n_windows` >= 0 there, -1 on the others), held back one
    window until it is known; an `error` becomes a row of zeros that the actors skip.
    """
    index = int(row["index"])
    source = bytes(row["data"]) if row["path"] == "" else row["path"]
    job = DecodeJob(index, source, name=row["name"])
    held: tuple | None = None
    for message in decode_job(job, grid=grid, sample_rate=sample_rate, block_seconds=block_seconds, timeout=timeout):
        kind = message[0]
        if kind == WINDOW:
            if held is not None:
                yield _window_row(index, held[2], held[3], n_windows=-1, n_samples=0)
            held = message
        elif kind == DONE:
            yield _window_row(index, held[2], held[3], n_windows=message[2], n_samples=message[3])  # type: ignore[index]
            return
        elif kind == ERROR:
            yield {"index": index, "window": -1, "samples": np.zeros(grid.window, np.float32),
                   "n_windows": -1, "n_samples": 0, "error": message[2]}
            return
        else:  # a decode warning (part of a damaged input lost): the worker's log reaches the driver
            log.warning("%s: %s", row["name"], message[2])


def _window_row(index: int, window_index: int, samples: np.ndarray, *, n_windows: int, n_samples: int) -> dict[str, Any]:
    return {"index": index, "window": window_index, "samples": samples,
            "n_windows": n_windows, "n_samples": n_samples, "error": ""}


class _InferenceActor:
    """map_batches body (a Ray actor): builds the `InferenceEngine` once, then runs window batches."""

    def __init__(self, *, network: list[Any], frontend: Any, device: str, precision: str, compile: bool,
                 num_classes: int, embedding_dim: int) -> None:
        import ray

        from .engine import InferenceEngine

        model = ray.get(network[0])  # the reference comes in a list, so Ray leaves it unresolved
        self.engine = InferenceEngine(model, frontend=frontend, device=device, precision=precision, compile=compile)
        self.num_classes = num_classes
        self.embedding_dim = embedding_dim

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = np.asarray(batch["error"] == "", dtype=bool)
        logits = np.zeros((len(ok), self.num_classes), np.float32)
        embeddings = np.zeros((len(ok), self.embedding_dim), np.float32)
        if ok.any():
            logits[ok], embeddings[ok] = self.engine(np.ascontiguousarray(batch["samples"][ok]))
        kept = {key: batch[key] for key in ("index", "window", "n_windows", "n_samples", "error")}
        return {**kept, "logits": logits, "embeddings": embeddings}


class _Assembler:
    """Window rows, arriving in any order, regrouped per input and given out in input order, with
    the single-machine pipeline's own bookkeeping (`engine._Pending`, `engine._outcome`)."""

    def __init__(self) -> None:
        self.pending: dict[int, _Pending] = {}
        self.next_index = 0

    def add(self, batch: dict[str, np.ndarray]) -> None:
        for row, index in enumerate(batch["index"].tolist()):
            if index < self.next_index:  # the input was given out already (it failed mid-way)
                continue
            state = self.pending.setdefault(index, _Pending())
            error = str(batch["error"][row])
            if error:
                state.failure = state.failure or error
                continue
            state.windows[int(batch["window"][row])] = (batch["logits"][row], batch["embeddings"][row])
            if batch["n_windows"][row] >= 0:
                state.expected, state.n_samples = int(batch["n_windows"][row]), int(batch["n_samples"][row])

    def ready(self) -> Iterator[Any]:
        while self.next_index in self.pending and self.pending[self.next_index].complete():
            yield _outcome(self.next_index, self.pending.pop(self.next_index))
            self.next_index += 1
