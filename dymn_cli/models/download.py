"""Downloading the published checkpoints into the cache (`weights.cache_dir()`), verified by SHA-256,
one process at a time per cache (a lock on the folder itself), never leaving a partial file under the
real name, nor anything at all when the download fails (with what to do offline, `offline_hint`)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from dymn_cli.atomic import AtomicFile, atomic_binary_file
from dymn_cli.errors import DownloadError
from dymn_cli.models.weights import (
    CACHE_DIR_ENV,
    CHUNK,
    RELEASE_URL_ENV,
    SHA256_PATTERN,
    WeightsRecord,
    as_record,
    cache_dir,
    check_sha256,
    sha256_file,
    sidecar,
)
from dymn_cli.terminal import live_display
from dymn_cli.version import __version__

try:  # POSIX only; elsewhere concurrent downloads are not serialised (the rename still keeps files whole)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

DOWNLOAD_TIMEOUT_S = 60.0


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
    record = as_record(record_or_name)
    expected = check_sha256(sha256) if sha256 is not None else record.sha256
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
                f"cannot write to the weights cache {directory}: {e.strerror or e}; set {CACHE_DIR_ENV} to a writable directory"
            ) from None
        lock = contextlib.nullcontext()  # a read-only cache that already has the file
    try:
        with lock:
            if target.is_file():
                _verify_cached(target, expected)
            else:
                _fetch(record.url, target, expected, progress=progress)
    except _Unreachable as error:
        raise ReleaseUnreachable(str(error), record, directory) from None
    finally:
        if created:  # (a first download that failed leaves no empty cache behind either)
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if empty
    return target


def offline_hint(record: WeightsRecord, directory: Path, *, local: str | None = None) -> str:
    """What to do when the release cannot be reached (offline, behind a firewall, a first run); `local`
    names the caller's way to a local checkpoint (`--weights FILE`), where it has one."""
    first = f"give a local checkpoint with {local}, " if local else ""
    return (
        f"offline? {first}set {RELEASE_URL_ENV} to a mirror of the release, "
        f"or run `dymn-tag download {record.name}` on a connected machine and copy its cache "
        f"to {directory} (the cache; {CACHE_DIR_ENV} moves it)"
    )


class ReleaseUnreachable(DownloadError):
    """The release could not be reached for a model not in the cache. The advice names only what works
    everywhere; a caller with a way to a local checkpoint (a command's `--weights`) adds it, `with_local`."""

    def __init__(self, reason: str, record: WeightsRecord, directory: Path, *, local: str | None = None) -> None:
        super().__init__(f"{reason}; {offline_hint(record, directory, local=local)}")
        self.reason, self.record, self.directory = reason, record, directory

    def with_local(self, local: str) -> ReleaseUnreachable:
        return ReleaseUnreachable(self.reason, self.record, self.directory, local=local)


class _Unreachable(DownloadError):
    """The release could not be reached or did not serve the file (network, DNS, HTTP errors)."""


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
    record_path = sidecar(path, ".sha256")
    actual = sha256_file(path)
    source = "expected"
    if expected is None:
        if not record_path.is_file():
            # Placed there by hand (downloads write the record before the file): trust it from now on.
            with contextlib.suppress(OSError):  # a read-only cache
                _write_hash_record(path, actual)
            return
        expected, source = _read_hash_record(record_path), f"recorded in {record_path.name}"
    if actual != expected:
        raise DownloadError(
            f"cached weights {path} are corrupt or have been tampered with: SHA-256 {actual} does not match "
            f"the {source} {expected}; delete the file to download it again"
        )


def _read_hash_record(record_path: Path) -> str:
    text = record_path.read_text(encoding="ascii", errors="replace").split()
    if not text or not SHA256_PATTERN.fullmatch(text[0].lower()):
        raise DownloadError(f"hash record {record_path} is unreadable; delete it and the file beside it to download again")
    return text[0].lower()


def _write_hash_record(target: Path, digest: str) -> None:
    with atomic_binary_file(sidecar(target, ".sha256")) as record:
        record.write(f"{digest}  {target.name}\n".encode())


def _fetch(url: str, target: Path, expected: str | None, *, progress: bool) -> None:
    """Stream `url` into a temporary file beside `target`, check length and hash, then rename it into place."""
    request = urllib.request.Request(url, headers={"User-Agent": f"dymn-cli/{__version__}"})
    partial = AtomicFile(target, binary=True)
    try:
        digest, received, total = _stream(request, partial.stream, progress=progress, label=target.name)
        if total is not None and received != total:
            raise DownloadError(f"cannot download {url}: the connection closed after {received} of {total} bytes")
        if expected is not None and digest != expected:
            raise DownloadError(
                f"downloaded {url} but its SHA-256 {digest} does not match the expected {expected}; nothing was saved"
            )
        # The record first: a file in the cache then always has its record (see _verify_cached).
        _write_hash_record(target, digest)
        partial.commit()
    except BaseException:
        partial.discard()
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
                while chunk := response.read(CHUNK):
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
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar, live_display(bar.stop, bar.start):
        task = bar.add_task(f"downloading {label}", total=total)
        yield lambda n: bar.advance(task, n)
