"""One exception base for everything a user can cause; the CLI maps it to an exit code in one place."""

from __future__ import annotations


class DymnError(Exception):
    """An error with a message meant for the user (one line, no traceback)."""

    exit_code: int = 1


class UsageError(DymnError):
    """Bad options or arguments: unknown model, missing path, malformed value."""

    exit_code = 2


class WeightsError(DymnError):
    """A checkpoint that cannot be found, downloaded, verified or loaded."""


class GraphNotCheckpoint(WeightsError):
    """An ONNX graph (from `dymn-tag export`) given where a PyTorch checkpoint is read. What to do
    instead depends on who asked (the CLI, the Python API, export): each says it in `hint`."""

    def __init__(self, path: object, hint: str | None = None) -> None:
        super().__init__(f"{path} looks like an ONNX graph, not a PyTorch checkpoint" + (f": {hint}" if hint else ""))
        self.path = path

    def instead(self, hint: str) -> GraphNotCheckpoint:
        """The same error, saying what this caller's user can do with the graph."""
        return GraphNotCheckpoint(self.path, hint)


class DownloadError(WeightsError):
    """A download that failed or whose content does not match the expected hash."""


class HeadError(UsageError):
    """A classification head file that cannot be read, or that does not fit the model it is used with."""


class AudioError(DymnError):
    """An input that cannot be read or decoded as audio."""


class TimedOut(AudioError):
    """An input whose decoding and tagging took longer than `--file-timeout` allows."""


class Interrupted(DymnError):
    """Stopped by a signal (SIGINT, SIGTERM); a run keeps every finished result. Exit code 128 + signal."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


class SignalReceived(BaseException):
    """What a SIGINT / SIGTERM handler raises. Not an `Exception`, like KeyboardInterrupt, so that no
    `except Exception` on the way (logging's own, a decoder's) can swallow it; reported as `Interrupted`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class OutputError(DymnError):
    """An output that cannot be written (disk full, quota, I/O error): the run stops, the earlier
    output stays in place."""


class OutputClosed(DymnError):
    """The reader of a stream output (stdout in a pipe, a FIFO) went away: the run stops at once,
    silently, with the status of a process ended by SIGPIPE (141), as `seq 9 | head -1` ends `seq`."""

    exit_code = 141


class GraphError(UsageError):
    """An ONNX graph file that cannot be read, or that is not a graph `dymn-tag export` wrote (its
    inputs, outputs or metadata do not keep the contract of `dymn_cli.graph_metadata`)."""


EXTRAS = {"torch": "torch", "onnxruntime": "onnx", "onnx": "onnx", "ray": "ray", "pyarrow": "ray", "matplotlib": "plot"}
"""The optional dependencies, by top-level module, and the extra of `dymn-cli` that installs each."""


WITHOUT = {"torch": "; or tag without torch with a graph that `dymn-tag export` wrote elsewhere: --weights MODEL.onnx"}
"""What can be done without a missing dependency, where something can."""


class MissingExtra(DymnError):
    """What the command asked for needs an optional dependency that is not installed."""

    @classmethod
    def for_import(cls, error: ImportError) -> MissingExtra | None:
        """The one-line error for a failed import of an optional dependency, or None for any other import."""
        module = (error.name or "").split(".")[0]
        if not isinstance(error, ModuleNotFoundError) or module not in EXTRAS:
            return None
        extra = EXTRAS[module]
        return cls(f"this needs {module}, which is not installed: pip install 'dymn-cli[{extra}]'{WITHOUT.get(module, '')}")
