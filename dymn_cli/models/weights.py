"""The published checkpoints: a registry, a verified download cache and safe checkpoint loading.

The registry names the AudioSet checkpoints of the EfficientAT release v0.0.1 (Schmid, Koutini, Widmer):
three DyMNs and nine MobileNetV3s. A record knows its file name, architecture and front end; `download`
puts the file in a per-user cache, verifying it by SHA-256; `load_checkpoint` reads a state dict with
`torch.load(weights_only=True)`, so that a checkpoint can hold tensors but never run code.

Cache layout (directory from `cache_dir()`):
    <filename>          the checkpoint, only ever created by an atomic rename of a complete download
    <filename>.sha256   its SHA-256 as `sha256sum` writes it, recorded when it was downloaded
Downloads into one cache are serialised between processes by a `flock` on the cache directory itself,
so that a failed download leaves nothing behind (no lock file).

Environment: `DYMN_CACHE_DIR` (cache directory), `XDG_CACHE_HOME`, `DYMN_RELEASE_URL` (a mirror of the
release: any URL that serves the release's file names below it, `file://` included).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import http.client
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from dymn_cli import __version__
from dymn_cli.errors import DownloadError, UsageError, WeightsError
from dymn_cli.models.frontend import FrontEndConfig

try:  # POSIX only; elsewhere concurrent downloads are not serialised (the rename still keeps files whole)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

DEFAULT_RELEASE_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
RELEASE_URL_ENV = "DYMN_RELEASE_URL"
CACHE_DIR_ENV = "DYMN_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")

Family = Literal["dymn", "mn"]


def release_url() -> str:
    """Base URL of the release (`$DYMN_RELEASE_URL` if set), always ending in '/'."""
    base = os.environ.get(RELEASE_URL_ENV) or DEFAULT_RELEASE_URL
    return base if base.endswith("/") else base + "/"


@functools.lru_cache(maxsize=None)
def _count_parameters(family: str, width: float) -> int:
    from dymn_cli.models import create_model  # late: the registry must not need the models to import

    try:  # no memory and no initialisation work on the meta device
        with torch.device("meta"):
            model = create_model(family=family, width=width)
    except (NotImplementedError, RuntimeError):  # a constructor that computes on its tensors
        model = create_model(family=family, width=width)
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class WeightsRecord:
    """One published checkpoint and everything that belongs to it."""

    name: str
    filename: str
    family: Family
    width: float
    map: float | None
    """AudioSet evaluation mAP that the authors report for this checkpoint (None where unknown)."""
    frontend: FrontEndConfig = field(default_factory=FrontEndConfig)
    sha256: str | None = None
    """Known SHA-256 of the release file; None where not published (then the cache records its own)."""

    @property
    def url(self) -> str:
        return urllib.parse.urljoin(release_url(), urllib.parse.quote(self.filename))

    @property
    def num_params(self) -> int:
        """Number of parameters (buffers excluded) of the architecture, built on the meta device once."""
        return _count_parameters(self.family, self.width)


def _record(name: str, filename: str, family: Family, width: float, map_: float | None) -> WeightsRecord:
    return WeightsRecord(name=name, filename=filename, family=family, width=width, map=map_)


# File names and mAPs: EfficientAT `models/dymn/model.py` and `models/mn/model.py` (pretrained_models) and the
# README's table of models; the MN and dymn20 mAPs are in the file names.
REGISTRY: dict[str, WeightsRecord] = {
    r.name: r
    for r in (
        _record("dymn04_as", "dymn04_as.pt", "dymn", 0.4, 0.450),
        _record("dymn10_as", "dymn10_as.pt", "dymn", 1.0, 0.477),
        _record("dymn20_as", "dymn20_as_mAP_493.pt", "dymn", 2.0, 0.493),
        _record("mn01_as", "mn01_as_mAP_298.pt", "mn", 0.1, 0.298),
        _record("mn02_as", "mn02_as_mAP_378.pt", "mn", 0.2, 0.378),
        _record("mn04_as", "mn04_as_mAP_432.pt", "mn", 0.4, 0.432),
        _record("mn05_as", "mn05_as_mAP_443.pt", "mn", 0.5, 0.443),
        _record("mn10_as", "mn10_as_mAP_471.pt", "mn", 1.0, 0.471),
        _record("mn20_as", "mn20_as_mAP_478.pt", "mn", 2.0, 0.478),
        _record("mn30_as", "mn30_as_mAP_482.pt", "mn", 3.0, 0.482),
        _record("mn40_as", "mn40_as_mAP_484.pt", "mn", 4.0, 0.484),
        _record("mn40_as_ext", "mn40_as_ext_mAP_487.pt", "mn", 4.0, 0.487),
    )
}


def get_record(name: str) -> WeightsRecord:
    """The registry entry for `name` (case-insensitive); UsageError naming the known ones otherwise."""
    key = name.strip().lower()
    if key in REGISTRY:
        return REGISTRY[key]
    close = difflib.get_close_matches(key, REGISTRY, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UsageError(f"unknown model {name!r}; {hint}known models: {', '.join(REGISTRY)}")


def cache_dir() -> Path:
    """`$DYMN_CACHE_DIR`, else `$XDG_CACHE_HOME/dymn-cli`, else `~/.cache/dymn-cli` (not created here)."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore a relative path
        return Path(xdg) / "dymn-cli"
    return Path.home() / ".cache" / "dymn-cli"


def cached_path(record_or_name: WeightsRecord | str, *, cache: Path | None = None) -> Path:
    """Where `download` keeps this checkpoint (whether or not it is there yet)."""
    return Path(cache if cache is not None else cache_dir()) / _as_record(record_or_name).filename


def is_cached(names: str) -> bool:
    """Whether the model(s) named (comma-separated for an ensemble) are in the cache; False for an
    unknown name (whose error comes when it is loaded)."""
    try:
        return all(cached_path(get_record(n.strip())).is_file() for n in names.split(",") if n.strip())
    except UsageError:
        return False


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    record_or_name: WeightsRecord | str,
    *,
    sha256: str | None = None,
    progress: bool = True,
    cache: Path | None = None,
) -> Path:
    """The cached checkpoint file, downloaded first if needed; verified by SHA-256 either way.

    The expected hash is `sha256`, else the record's, else (for a file already cached) the one recorded
    beside it when it was downloaded. A cached file that does not match raises DownloadError and is left
    alone for the user to inspect. Network and HTTP failures, a short read and a hash mismatch raise
    DownloadError and leave nothing in the cache.
    """
    record = _as_record(record_or_name)
    expected = _check_sha256(sha256) if sha256 is not None else record.sha256
    directory = Path(cache if cache is not None else cache_dir())
    target = directory / record.filename
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not target.is_file() and not os.access(directory, os.W_OK):
            raise PermissionError(13, "Permission denied")
        lock = _exclusive_lock(directory)
    except OSError as e:
        if not target.is_file():
            raise DownloadError(
                f"cannot write to the weights cache {directory}: {e.strerror or e}; "
                f"set {CACHE_DIR_ENV} to a writable directory"
            ) from None
        lock = contextlib.nullcontext()  # a read-only cache that already has the file
    try:
        with lock:
            if target.is_file():
                _verify_cached(target, expected)
            else:
                _fetch(record.url, target, expected, progress=progress)
    except _Unreachable as error:
        raise DownloadError(f"{error}; {offline_hint(record, directory)}") from None
    finally:
        if created:  # (a first download that failed leaves no empty cache behind either)
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if empty
    return target


def offline_hint(record: WeightsRecord, directory: Path) -> str:
    """What to do when the release cannot be reached (offline, behind a firewall, a first run)."""
    return (
        f"offline? give a local checkpoint with --weights FILE, set {RELEASE_URL_ENV} to a mirror of the release, "
        f"or run `dymn-tag download {record.name}` on a connected machine and copy its cache "
        f"to {directory} (the cache; {CACHE_DIR_ENV} moves it)"
    )


class _Unreachable(DownloadError):
    """The release could not be reached or did not serve the file (network, DNS, HTTP errors)."""


def _as_record(record_or_name: WeightsRecord | str) -> WeightsRecord:
    return record_or_name if isinstance(record_or_name, WeightsRecord) else get_record(record_or_name)


def _check_sha256(value: str) -> str:
    digest = value.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise UsageError(f"not a SHA-256 hash (64 hexadecimal digits): {value!r}")
    return digest


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _exclusive_lock(directory: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive `flock` on the cache `directory`, taken on entering; opened now, so that OSError is
    raised here. (A lock file beside each checkpoint would stay behind: deleting one that another process
    has open would race.)"""
    return _flocked(os.open(directory, os.O_RDONLY))


@contextlib.contextmanager
def _flocked(fd: int) -> Iterator[None]:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _verify_cached(path: Path, expected: str | None) -> None:
    record_path = _sidecar(path, ".sha256")
    actual = sha256_file(path)
    source = "expected"
    if expected is None:
        if not record_path.is_file():
            # Placed there by hand (downloads write the record before the file): trust it from now on.
            with contextlib.suppress(OSError):  # a read-only cache
                _write_atomic(record_path, f"{actual}  {path.name}\n".encode())
            return
        expected, source = _read_hash_record(record_path), f"recorded in {record_path.name}"
    if actual != expected:
        raise DownloadError(
            f"cached weights {path} are corrupt or have been tampered with: SHA-256 {actual} does not match "
            f"the {source} {expected}; delete the file to download it again"
        )


def _read_hash_record(record_path: Path) -> str:
    text = record_path.read_text(encoding="ascii", errors="replace").split()
    if not text or not _SHA256.fullmatch(text[0].lower()):
        raise DownloadError(
            f"hash record {record_path} is unreadable; delete it and the file beside it to download again"
        )
    return text[0].lower()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise


def _fetch(url: str, target: Path, expected: str | None, *, progress: bool) -> None:
    """Stream `url` into a temporary file beside `target`, check length and hash, then rename it into place."""
    request = urllib.request.Request(url, headers={"User-Agent": f"dymn-cli/{__version__}"})
    tmp = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False)
    try:
        with tmp:
            digest, received, total = _stream(request, tmp, progress=progress, label=target.name)
            tmp.flush()
            os.fsync(tmp.fileno())
        if total is not None and received != total:
            raise DownloadError(
                f"cannot download {url}: the connection closed after {received} of {total} bytes"
            )
        if expected is not None and digest != expected:
            raise DownloadError(
                f"downloaded {url} but its SHA-256 {digest} does not match the expected {expected}; "
                "nothing was saved"
            )
        # The record first: a file in the cache then always has its record (see _verify_cached).
        _write_atomic(_sidecar(target, ".sha256"), f"{digest}  {target.name}\n".encode())
        os.replace(tmp.name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise


def _stream(request: urllib.request.Request, out, *, progress: bool, label: str) -> tuple[str, int, int | None]:
    url = request.full_url
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _progress_bar(progress, total, label) as advance:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    advance(len(chunk))
    except urllib.error.HTTPError as e:
        raise _Unreachable(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _Unreachable(f"cannot download {url}: {_reason(e.reason)}") from None
    except (OSError, http.client.HTTPException) as e:  # timeouts, resets, truncated chunked bodies
        raise _Unreachable(f"cannot download {url}: {_reason(e)}") from None
    return digest.hexdigest(), received, total


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return f"timed out after {DOWNLOAD_TIMEOUT_S:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    text = str(reason).strip() or type(reason).__name__
    return " ".join(text.split())


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when `enabled` and stderr is a terminal; yields `advance(n_bytes)`."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"downloading {label}", total=total)
        yield lambda n: bar.advance(task, n)


# --- loading ---------------------------------------------------------------------------------------

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
    if len(head) >= 10 and head[8:10] == b'{"':
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
        f"{path} holds {_describe(obj)}; expected a state dict (a mapping of parameter names to tensors, "
        f"possibly under one of the keys {', '.join(_WRAPPER_KEYS)})"
    )


def _describe(obj: object) -> str:
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
            expected = _check_sha256(sha256)
            if not path.is_file():
                raise WeightsError(f"weights file not found: {path}")
            actual = sha256_file(path)
            if actual != expected:
                raise WeightsError(f"{path} does not match the expected SHA-256: it is {actual}, expected {expected}")
        return record, load_checkpoint(path)
    if record is None:
        raise UsageError("no weights given: name a model (e.g. dymn10_as) or a local weights file")
    return record, load_checkpoint(download(record, sha256=sha256, progress=progress))
