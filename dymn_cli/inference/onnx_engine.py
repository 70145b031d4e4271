"""The inference stage over a graph that `dymn-tag export` wrote, in onnxruntime: batches of windows
-> logits and embeddings, as `engine.InferenceEngine` computes them, without torch.

The graph holds the whole front end and scores its input as one window (`dymn_cli.graph_metadata`),
so a batch of windows goes in as it is. Everything a hostile file can get wrong (not a graph, a
graph of another tool, other inputs or outputs, a width unlike its labels) is found when the engine
is built, before any input is read, and told in one line naming the file (`GraphError`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dymn_cli.errors import GraphError, MissingExtra, UsageError
from dymn_cli.graph_metadata import EMBEDDING, INPUT, LOGITS, GraphMetadata

WINDOWS_PER_LANE = 8
"""Windows per lane and call on the CPU, as for the torch engine (`engine.WINDOWS_PER_LANE`)."""
CUDA_BATCH_SIZE = 16
PROBE_SECONDS = (0.1, 1.0)
"""The shortest and longest window a graph is tried on when it loads (the shapes of its outputs): its
own window within these bounds (a window too short for the network is the tagger's to refuse)."""
MAX_MESSAGE = 200
"""Characters of onnxruntime's own message kept in a one-line error (its messages run over lines)."""


def import_onnxruntime() -> Any:
    """onnxruntime, or the one-line error that says which extra installs it."""
    try:
        import onnxruntime
    except ModuleNotFoundError as error:
        raise (MissingExtra.for_import(error) or error) from None
    return onnxruntime


def cpu_threads() -> int:
    """The CPU threads to run on: `OMP_NUM_THREADS` (as for torch), else the CPUs this process may use."""
    configured = os.environ.get("OMP_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


SOURCE_LOCATION = re.compile(r"[\w/.-]*\.(?:h|cc|cpp):\d+ ")
"""Where in its C++ sources onnxruntime raised (`/onnxruntime_src/.../bfc_arena.cc:360 `): no reason for users."""
CPP_SIGNATURE = re.compile(r"(?:[\w:*&<>]+ )*[\w~:]+::\w+\(")
STATUS_CODE = re.compile(r"^\d+ : [A-Z_]+ : ")
NODE_STATUS = re.compile(r"Non-zero status code returned while running (\w+) node\. Name:'[^']*' Status Message: ")


def ort_message(error: BaseException, *, after: str = "") -> str:
    """onnxruntime's message as a short single line: without its error class and status code, and
    without the C++ file, line and function it often names before the reason (which cut it short);
    where it holds `after`, what follows it."""
    text = " ".join(str(error).split())
    if after:
        text = text.split(after, 1)[-1]
    for prefix in ("[ONNXRuntimeError] :", "[ONNXRuntimeError]:"):
        text = text.split(prefix, 1)[-1].strip()
    text = NODE_STATUS.sub(r"its \1 node failed: ", STATUS_CODE.sub("", text.strip()))
    while location := SOURCE_LOCATION.search(text):
        rest = text[location.end() :]
        if signature := CPP_SIGNATURE.match(rest):
            rest = rest[_closing_parenthesis(rest, signature.end()) :]
        elif identifier := re.match(r"\w+ (?=[A-Z])", rest):
            rest = rest[identifier.end() :]
        text = text[: location.start()] + rest.lstrip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _closing_parenthesis(text: str, start: int) -> int:
    """The index after the parenthesis that closes the one open at `start` (the end of `text` if none)."""
    depth = 1
    for index in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return index + 1
    return len(text)


class OnnxEngine:
    """An exported graph in onnxruntime: `[B, N]` float32 waveforms -> (logits `[B, K]`, embeddings `[B, C]`).

    On the CPU a batch is shared out between `lanes` threads (default: `cpu_threads()`), each running
    its share in a single-threaded session call, as the torch engine does and for the same reason: the
    network is a long chain of small operations. On CUDA (`device="cuda"`, or `"auto"` where
    onnxruntime has its CUDA provider) one lane runs whole batches.
    """

    def __init__(self, path: str | os.PathLike[str], *, device: str = "auto", lanes: int | None = None) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        self.source = os.fspath(path)
        if lanes is not None and lanes < 1:
            raise UsageError(f"lanes must be at least 1, got {lanes}")
        providers = choose_providers(device, ort.get_available_providers())
        self.device = "cuda" if providers[0][0] == "CUDAExecutionProvider" else "cpu"
        self.lanes = 1 if self.device == "cuda" else lanes or cpu_threads()
        self.session = self._open(ort, providers)
        if self.device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise UsageError(f"--device {device} was asked for, but onnxruntime could not start its CUDA provider")
        self.metadata = GraphMetadata.from_props(self.session.get_modelmeta().custom_metadata_map, self.source)
        self._check_signature()
        self.embedding_dim = self._probe()
        self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="dymn-onnx-lane") if self.lanes > 1 else None

    @property
    def preferred_batch_size(self) -> int:
        return WINDOWS_PER_LANE * self.lanes if self.device == "cpu" else CUDA_BATCH_SIZE

    def __call__(self, waveforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(waveforms, dtype=np.float32)
        if self._pool is None or len(batch) < 2:
            logits, embeddings = self._run(batch)
        else:
            outputs = list(self._pool.map(self._run, np.array_split(batch, min(self.lanes, len(batch)))))
            logits = np.concatenate([logits for logits, _ in outputs])
            embeddings = np.concatenate([embeddings for _, embeddings in outputs])
        return logits, embeddings

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            logits, embeddings = self.session.run([LOGITS, EMBEDDING], {INPUT: batch})
        except Exception as error:  # noqa: BLE001 - onnxruntime's own classes, each a failure of this graph
            raise GraphError(
                f"{self.source}: onnxruntime failed on a batch of shape {list(batch.shape)}: {ort_message(error)}"
            ) from None
        classes = len(self.metadata.labels)
        if logits.shape != (len(batch), classes) or embeddings.ndim != 2 or len(embeddings) != len(batch):
            raise GraphError(
                f"{self.source}: for a batch of {len(batch)} windows it gave logits {list(logits.shape)} and embeddings "
                f"{list(embeddings.shape)}, where [{len(batch)}, {classes}] and [{len(batch)}, dim] were expected"
            )
        return np.asarray(logits, dtype=np.float32), np.asarray(embeddings, dtype=np.float32)

    def _open(self, ort: Any, providers: list[tuple[str, dict[str, str]]]) -> Any:
        if not self.path.is_file():
            raise GraphError(f"{self.source}: {_not_a_file(self.path)}")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # (errors only: its warnings are about the graph, not for users)
        options.intra_op_num_threads = 1  # (each lane runs on one thread: `lanes` threads in all)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:  # (its fallback prints a banner to stdout, into the records, and retries the same provider: off)
            with contextlib.redirect_stdout(io.StringIO()):
                session = ort.InferenceSession(self.source, sess_options=options, providers=providers, enable_fallback=0)
            session.disable_fallback()  # (and no silent move to the CPU, with a banner, when CUDA fails mid-run)
            return session
        except Exception as error:  # noqa: BLE001 - whatever onnxruntime raises, the file is not a graph it can run
            reason = ort_message(error, after=" failed:")  # (after its "Load model from PATH failed:")
            if isinstance(error, UnicodeDecodeError):  # (its names are not text: onnxruntime's message cannot be read)
                reason = "a name in it is not UTF-8 text: a corrupt file"
            raise GraphError(f"{self.source}: not a readable ONNX graph ({reason})") from None

    def _check_signature(self) -> None:
        """The inputs and outputs of the contract: `waveform` [batch, samples] in, `logits` and `embedding` out."""
        inputs, outputs = self.session.get_inputs(), {o.name: o for o in self.session.get_outputs()}
        problem = None
        if [i.name for i in inputs] != [INPUT]:
            problem = f"inputs {[i.name for i in inputs]}, where one input {INPUT!r} was expected"
        elif inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 2:
            problem = f"input {INPUT!r} is {inputs[0].type} {inputs[0].shape}, where float [batch, samples] was expected"
        elif any(isinstance(dim, int) for dim in inputs[0].shape):
            problem = f"input {INPUT!r} has the fixed shape {inputs[0].shape}: batch and samples must be free"
        elif missing := [name for name in (LOGITS, EMBEDDING) if name not in outputs]:
            problem = f"no output {missing[0]!r} (its outputs: {sorted(outputs)})"
        else:
            problem = _output_problem(outputs[LOGITS], len(self.metadata.labels)) or _output_problem(outputs[EMBEDDING], None)
        if problem:
            raise GraphError(f"{self.source}: {problem}")

    def _probe(self) -> int:
        """Run two windows, silence and a tone (the graph's window, at most `PROBE_SECONDS`): a batch of
        two finds a graph that mixes the windows of a batch; returns the embedding's width."""
        samples = round(min(max(self.metadata.window, PROBE_SECONDS[0]), PROBE_SECONDS[1]) * self.metadata.sample_rate)
        tone = 0.1 * np.sin(np.arange(samples, dtype=np.float32) * np.float32(2 * np.pi * 440 / self.metadata.sample_rate))
        logits, embeddings = self._run(np.stack([np.zeros(samples, np.float32), tone]))
        if embeddings.shape[1] < 1:
            raise GraphError(f"{self.source}: its embedding is empty")
        if not (np.isfinite(logits).all() and np.isfinite(embeddings).all()):
            raise GraphError(
                f"{self.source}: its outputs for silence and a tone are not numbers (NaN or infinite): a broken graph"
            )
        return int(embeddings.shape[1])


def _not_a_file(path: Path) -> str:
    if path.is_dir():
        return "is a folder, not an ONNX graph"
    if path.exists():  # (a FIFO, a device such as /dev/zero, a socket: it could be read forever)
        return "not a regular file, not an ONNX graph"
    return "a link to nothing" if path.is_symlink() else "no such file"


def _output_problem(output: Any, width: int | None) -> str | None:
    if output.type != "tensor(float)" or len(output.shape) != 2:
        return f"output {output.name!r} is {output.type} {output.shape}, where float [batch, width] was expected"
    declared = output.shape[1]
    if width is not None and isinstance(declared, int) and declared != width:
        return f"output {output.name!r} has {declared} columns for {width} labels"
    return None


def choose_providers(device: str, available: list[str]) -> list[tuple[str, dict[str, str]]]:
    """onnxruntime's providers for `--device`: auto (CUDA where it has the provider), cpu, cuda or cuda:N."""
    kind, _, index = str(device).partition(":")
    has_cuda = "CUDAExecutionProvider" in available
    if kind not in ("auto", "cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise UsageError(f"unknown device {device!r}: use auto, cpu or cuda")
    if kind == "cuda" and not has_cuda:
        raise UsageError(
            f"--device {device} was asked for, but this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
        )
    cpu = ("CPUExecutionProvider", {})
    if kind == "cpu" or (kind == "auto" and not has_cuda):
        return [cpu]
    return [("CUDAExecutionProvider", {"device_id": index or "0"}), cpu]
