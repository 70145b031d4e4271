"""Labelling on a Ray cluster: the single-machine stages, spread out by Ray Data.

    inputs -> ray.data.from_items -> flat_map(decode_job)      decode + window, CPU tasks anywhere
           -> map_batches(_InferenceActor)                     InferenceEngine, a pool of actors that
                                                               each build the model once (a GPU each)
           -> iter_batches on the driver                       windows regrouped per input (as
                                                               pipeline.run_pipeline does)

`RayPipeline.run` yields what `pipeline.run_pipeline` yields (`WindowOutputs` or `Failure` per input,
in input order); `ray_tagger.RayTagger` turns them into results. Ray is imported only here
(`pip install 'dymn-cli[ray]'`).

Inputs are paths, which every node must see at the same place (a shared filesystem), or URIs that
pyarrow reads (`s3://...`), which each decode task fetches itself.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dymn_cli.audio.windows import WindowGrid
from dymn_cli.errors import UsageError
from dymn_cli.inference.decode_stage import DecodeJob, DoneMessage, ErrorMessage, WindowMessage, decode_job
from dymn_cli.inference.pipeline import Failure, PendingInput, WindowOutputs

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


class RayPipeline:
    """The decode tasks and the inference actors of one model on a Ray cluster.

    The network is shipped to the actors once, through Ray's object store.
    """

    def __init__(
        self,
        network: Any,
        *,
        frontend: Any,
        options: RayOptions,
        device: str = "auto",
        precision: str = "auto",
        compile: bool = False,
        batch_size: int = RAY_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise UsageError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
        if device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"unknown device {device!r} for --ray: use auto, cpu or cuda (one GPU per actor)")
        if options.actors is not None and options.actors < 1:
            raise UsageError(f"--actors must be at least 1, got {options.actors}")
        self.options = options
        self._ray = connect(options.address)
        gpus = int(self._ray.cluster_resources().get("GPU", 0))
        if device == "cuda" and gpus == 0:
            raise UsageError("--device cuda was asked for, but the Ray cluster has no GPU")
        self.uses_gpu = gpus > 0 and device != "cpu"
        self.actors = options.actors or (gpus if self.uses_gpu else 1)
        self.batch_size = batch_size
        self._network = self._ray.put(network)
        self._engine_args = {
            "frontend": frontend,
            "device": "cuda" if self.uses_gpu else "cpu",
            "precision": precision,
            "compile": compile,
            "num_classes": network.num_classes,
            "embedding_dim": network.embedding_dim,
        }

    def run(
        self, items: list[dict[str, Any]], *, grid: WindowGrid, sample_rate: int, timeout: float | None = None
    ) -> Iterator[WindowOutputs | Failure]:
        """Decode and tag input rows (see `ray_tagger`); one outcome per row, in row order. `timeout` is
        checked by each decode task as it decodes (a task stuck inside a decoder is not killed)."""
        if not items:
            return
        assembler = _Assembler()
        for batch in self._dataset(items, grid, sample_rate, timeout).iter_batches(batch_size=None, batch_format="numpy"):
            assembler.add(batch)
            yield from assembler.ready()
        if assembler.next_index != len(items):  # cannot happen unless Ray lost rows
            raise RuntimeError(f"the Ray pipeline ended with {len(items) - assembler.next_index} inputs unfinished")

    def _dataset(self, items: list[dict[str, Any]], grid: WindowGrid, sample_rate: int, timeout: float | None) -> Any:
        ray = self._ray
        blocks = min(len(items), MAX_INPUT_BLOCKS)
        decoded = ray.data.from_items(items, override_num_blocks=blocks).flat_map(
            _decode_rows,
            fn_kwargs={"grid": grid, "sample_rate": sample_rate, "block_seconds": self.options.block_seconds, "timeout": timeout},
        )
        # No actor restarts: Ray keeps these actors' constructor arguments in its object store, where a
        # restart cannot count on them (ray-project/ray#53727), and says so in an error-level line on
        # every run. An actor that dies ends the run with its reason instead. (Ray takes max_restarts
        # only through **ray_remote_args, deprecated since 2.60: where that is gone, Ray's default stands.)
        no_restarts = {"max_restarts": 0} if _takes_remote_args(decoded.map_batches) else {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=DeprecationWarning)
            return decoded.map_batches(
                _InferenceActor,
                fn_constructor_kwargs={"network": [self._network], **self._engine_args},
                batch_size=grid.batch_size(self.batch_size),
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=self.actors),
                num_cpus=self.options.actor_cpus,
                num_gpus=1 if self.uses_gpu else 0,
                **no_restarts,
            )


def _takes_remote_args(method: Any) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(method).parameters.values())


def _decode_rows(
    row: dict[str, Any], *, grid: WindowGrid, sample_rate: int, block_seconds: float, timeout: float | None = None
) -> Iterator[dict[str, Any]]:
    """flat_map body (a Ray task): one input -> its window rows, through `decode_stage.decode_job`.

    Rows keep one fixed shape, so Ray stores the windows as one tensor column: the `done` message
    rides on the input's last window (`n_windows` >= 0 there, -1 on the others), held back one
    window until it is known; an `error` becomes a row of zeros that the actors skip.
    """
    index = int(row["index"])
    source = bytes(row["data"]) if row["path"] == "" else row["path"]
    job = DecodeJob(index, source, name=row["name"])
    held: WindowMessage | None = None
    for message in decode_job(job, grid=grid, sample_rate=sample_rate, block_seconds=block_seconds, timeout=timeout):
        if isinstance(message, WindowMessage):
            if held is not None:
                yield _window_row(index, held.window_index, held.samples, n_windows=-1, n_samples=0)
            held = message
        elif isinstance(message, DoneMessage):
            assert held is not None  # a job that is done has at least one window
            yield _window_row(index, held.window_index, held.samples, n_windows=message.n_windows, n_samples=message.n_samples)
            return
        elif isinstance(message, ErrorMessage):
            yield {
                "index": index,
                "window": -1,
                "samples": np.zeros(grid.window, np.float32),
                "n_windows": -1,
                "n_samples": 0,
                "error": message.reason,
            }
            return
        else:  # a decode warning (part of a damaged input lost): the worker's log reaches the driver
            log.warning("%s: %s", row["name"], message.text)


def _window_row(index: int, window_index: int, samples: np.ndarray, *, n_windows: int, n_samples: int) -> dict[str, Any]:
    return {
        "index": index,
        "window": window_index,
        "samples": samples,
        "n_windows": n_windows,
        "n_samples": n_samples,
        "error": "",
    }


class _InferenceActor:
    """map_batches body (a Ray actor): builds the `InferenceEngine` once, then runs window batches."""

    def __init__(
        self,
        *,
        network: list[Any],
        frontend: Any,
        device: str,
        precision: str,
        compile: bool,
        num_classes: int,
        embedding_dim: int,
    ) -> None:
        import ray

        from dymn_cli.inference.engine import InferenceEngine

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
    the single-machine pipeline's own bookkeeping (`pipeline.PendingInput`)."""

    def __init__(self) -> None:
        self.pending: dict[int, PendingInput] = {}
        self.next_index = 0

    def add(self, batch: dict[str, np.ndarray]) -> None:
        for row, index in enumerate(batch["index"].tolist()):
            if index < self.next_index:  # the input was given out already (it failed mid-way)
                continue
            state = self.pending.setdefault(index, PendingInput())
            error = str(batch["error"][row])
            if error:
                state.failure = state.failure or error
                continue
            state.add_window(int(batch["window"][row]), batch["logits"][row], batch["embeddings"][row])
            if batch["n_windows"][row] >= 0:
                state.expected, state.n_samples = int(batch["n_windows"][row]), int(batch["n_samples"][row])

    def ready(self) -> Iterator[WindowOutputs | Failure]:
        while self.next_index in self.pending and self.pending[self.next_index].complete():
            yield self.pending.pop(self.next_index).outcome(self.next_index)
            self.next_index += 1
