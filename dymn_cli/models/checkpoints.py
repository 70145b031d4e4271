"""Reading checkpoints safely (`torch.load(weights_only=True)`: tensors, never code), and the one
entry point that turns a model name or a weights file into a state dict."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from dymn_cli.errors import GraphNotCheckpoint, UsageError, WeightsError
from dymn_cli.models.download import download
from dymn_cli.models.head import is_head_file
from dymn_cli.models.weights import WeightsRecord, check_sha256, get_record, sha256_file

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
_PICKLE_GLOBAL = re.compile(r"GLOBAL (\S+)")


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in `path`, loaded on the CPU without running any code from the file.

    Accepts a flat mapping of names to tensors, or a dict holding one under a usual key
    (`state_dict`, `model_state_dict`, `model`, `net`, `weights`). WeightsError for anything else.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if not path.is_file():
        raise WeightsError(f"weights path is not a file: {path}")
    _sniff(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file; all mean the same here
        message = str(e)
        if "Weights only load failed" in message and (found := _PICKLE_GLOBAL.search(message)):
            raise WeightsError(
                f"refusing to load {path}: it is not plain tensors, and unpickling it would execute code "
                f"({found.group(1)}); only weights_only checkpoints are loaded"
            ) from None
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {_gist(e)}") from None
    return _state_dict_of(obj, path)


def _gist(error: Exception) -> str:
    """One line of what torch said: the unpickler's own complaint rather than its advice, if it has one."""
    message = str(error)
    _, marker, after = message.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (after if marker else message).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(error).__name__


def _sniff(path: Path) -> None:
    """WeightsError saying what the file is when it is plainly not a torch checkpoint."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise WeightsError(f"{path} is empty (0 bytes), not a PyTorch checkpoint")
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip format
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            raise WeightsError(f"{path} is a truncated or corrupt zip archive, not a readable PyTorch checkpoint") from None
        if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            raise WeightsError(f"{path} is a zip archive but not a PyTorch checkpoint (it has no data.pkl)")
        return
    if head[0] == 0x80:  # a pickle (protocol >= 2): torch.save's legacy format
        return
    if len(head) >= 3 and head[0] == 0x08 and head[2] in (0x12, 0x1A, 0x22, 0x3A, 0x42):  # ONNX: ir_version, then a field
        raise GraphNotCheckpoint(path)
    if len(head) >= 10 and head[8:10] == b'{"':
        if is_head_file(path):
            raise WeightsError(
                f"{path} is a head (from dymn-tag train), not a PyTorch checkpoint: give it with --head, "
                "beside the network's --weights"
            )
        raise WeightsError(f"{path} looks like a safetensors file, not a PyTorch checkpoint")
    text = head.decode("utf-8", errors="replace")  # one bad character allowed: the sample may cut one in two
    if text.count("\ufffd") <= 1 and all(c.isprintable() or c in "\r\n\t\ufffd" for c in text):
        kind = "an HTML page" if text.lstrip().lower().startswith(("<!doctype html", "<html")) else "a text file"
        preview = " ".join(text.split())[:40]
        raise WeightsError(f"{path} is {kind} (starts {preview!r}), not a PyTorch checkpoint")
    raise WeightsError(f"{path} is not a PyTorch checkpoint (unrecognised binary data starting {head[:8].hex()})")


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _state_dict_of(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if _is_state_dict(obj):
        return dict(obj)  # type: ignore[arg-type]
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if _is_state_dict(obj.get(key)):
                return dict(obj[key])
    raise WeightsError(
        f"{path} holds {_what_it_holds(obj)}; expected a state dict (a mapping of parameter names to tensors, "
        f"possibly under one of the keys {', '.join(_WRAPPER_KEYS)})"
    )


def _what_it_holds(obj: object) -> str:
    if isinstance(obj, torch.Tensor):
        return f"a single tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, Mapping):
        if not obj:
            return "an empty mapping"
        bad = next(((k, v) for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))))
        keys = ", ".join(repr(k) for k in list(obj)[:5]) + (", ..." if len(obj) > 5 else "")
        return f"a mapping with keys {keys} whose entry {bad[0]!r} is {type(bad[1]).__name__}, not a tensor"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"a {type(obj).__name__}"


# --- the one entry point ---------------------------------------------------------------------------------


def resolve_weights(
    *,
    model: str | None = None,
    weights: str | Path | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> tuple[WeightsRecord | None, dict[str, torch.Tensor]]:
    """The record (if `model` names one) and the state dict to use.

    A local `weights` file wins and needs no network (verified against `sha256` when given); `model` then
    only names the architecture. Otherwise `model` is downloaded or taken from the cache.
    """
    record = get_record(model) if model is not None else None
    if weights is not None:
        path = Path(weights).expanduser()
        if sha256 is not None:
            expected = check_sha256(sha256)
            if not path.is_file():
                raise WeightsError(f"weights file not found: {path}")
            actual = sha256_file(path)
            if actual != expected:
                raise WeightsError(f"{path} does not match the expected SHA-256: it is {actual}, expected {expected}")
        return record, load_checkpoint(path)
    if record is None:
        raise UsageError("no weights given: name a model (e.g. dymn10_as) or a local weights file")
    return record, load_checkpoint(download(record, sha256=sha256, progress=progress))
