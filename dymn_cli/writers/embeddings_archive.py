"""Reading an embeddings archive (`--embeddings`, `merge`, `search --index`) defensively: the one loader.

An archive is a zip of `.npy` arrays (see `dymn_cli.writers.embeddings` for its keys). Before any array is
read, every member's header is parsed and checked: no pickles (object arrays are refused, and numpy is
never asked to unpickle), the known keys with their kinds and shapes, and sizes that fit the file (a
member cannot declare more bytes than it holds, nor expand beyond `MAX_EXPANSION` times its compressed
size). The arrays read are checked to fit together: one path per clip, window rows that name a clip,
finite times and settings. Embeddings are checked for finiteness by whoever reads them in blocks (the
index computes their norms).

Anything that is not such an archive is one `ArchiveError` (a `UsageError`, exit 2) naming the file
and the reason; a damaged zip, a cut-short file or a flipped bit never escapes as a traceback.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dymn_cli.errors import UsageError

__all__ = ["EMBEDDINGS", "MAX_EXPANSION", "MAX_MEMBERS", "ArchiveError", "EmbeddingsArchive", "read_embeddings_archive"]

MAX_MEMBERS = 64  # arrays an archive may hold (it has at most 8 of its own)
MAX_EXPANSION = 1000  # bytes a compressed member may declare per byte it stores (a zip bomb: far more)
EMBEDDINGS = ("clip_embeddings", "window_embeddings")
WINDOW_KEYS = ("window_embeddings", "window_path_index", "window_starts", "window_ends")
SETTINGS = ("window_seconds", "hop_seconds")
# key: (numpy kinds allowed, number of dimensions)
KINDS: dict[str, tuple[str, int]] = {
    "paths": ("U", 1),
    "clip_embeddings": ("f", 2),
    "window_embeddings": ("f", 2),
    "window_path_index": ("iu", 1),
    "window_starts": ("f", 1),
    "window_ends": ("f", 1),
    "window_seconds": ("f", 0),
    "hop_seconds": ("f", 0),
    "model": ("U", 0),
    "checkpoints": ("U", 2),
}
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# what a damaged zip or array raises while it is read
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, struct.error, zlib.error, zipfile.BadZipFile,
               NotImplementedError, RuntimeError, OverflowError, UnicodeDecodeError)  # fmt: skip


class ArchiveError(UsageError):
    """A file that is not a readable embeddings archive (one line naming the file and the reason)."""


@dataclass(frozen=True)
class Member:
    """One array of the archive as its header declares it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    data_offset: int | None  # where its data starts in the file, when stored uncompressed


@dataclass
class EmbeddingsArchive:
    """The checked arrays of an archive: everything but the embeddings read (`arrays`), the embeddings
    described (`members`) for `read_embeddings` to read (into memory, or mapped)."""

    path: Path
    members: dict[str, Member]
    arrays: dict[str, np.ndarray]

    @property
    def has_windows(self) -> bool:
        return "window_embeddings" in self.members

    @property
    def width(self) -> int:
        return int(self.members["clip_embeddings"].shape[1])

    def setting(self, name: str) -> float | None:
        return float(self.arrays[name]) if name in self.arrays else None

    def read_embeddings(self, name: str, *, memory_map: bool = False) -> np.ndarray:
        """`[n, C]` float32 embeddings: read straight from the file when stored uncompressed as little-endian
        float32 (no second copy; `memory_map`: mapped, not read), else through numpy's reader."""
        member = self.members[name]
        rows, width = member.shape
        plain = member.data_offset is not None and member.dtype == np.dtype("<f4")
        try:
            if not plain:
                return np.ascontiguousarray(_read_member(self.path, name), dtype=np.float32)
            assert member.data_offset is not None
            if memory_map and rows:
                return np.memmap(self.path, dtype=np.float32, mode="r", offset=member.data_offset, shape=(rows, width))
            embeddings = np.empty((rows, width), dtype=np.float32)
            with open(self.path, "rb") as stream:  # (read into place: no second copy)
                stream.seek(member.data_offset)
                got = stream.readinto(memoryview(embeddings.reshape(-1)).cast("B")) if embeddings.size else 0
            if got != embeddings.nbytes:
                raise ArchiveError(f"{self.path}: a damaged embeddings archive (its {name} are cut short)")
            return embeddings
        except READ_ERRORS as error:
            raise ArchiveError(f"{self.path}: a damaged embeddings archive ({name}: {_reason(error)})") from None


def read_embeddings_archive(path: str | os.PathLike[str]) -> EmbeddingsArchive:
    """The archive at `path`, checked (see the module docstring); `ArchiveError` for anything else."""
    source = Path(path)
    _check_regular_file(source)
    try:
        members = _members(source)
        arrays = {name: _read_member(source, name) for name in KINDS if name in members and name not in EMBEDDINGS}
    except ArchiveError:
        raise
    except READ_ERRORS as error:
        raise ArchiveError(
            f"{source}: not an embeddings archive (.npz from dymn-tag --embeddings), unreadable: {_reason(error)}"
        ) from None
    archive = EmbeddingsArchive(source, members, arrays)
    _check_fit(archive)
    return archive


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__


def _check_regular_file(source: Path) -> None:
    try:
        info = os.stat(source)
    except FileNotFoundError:
        raise ArchiveError(f"{source}: no such index file") from None
    except OSError as error:
        raise ArchiveError(f"{source}: cannot read: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ArchiveError(f"{source}: is a folder, not an embeddings archive (.npz)")
    if not stat.S_ISREG(info.st_mode):
        raise ArchiveError(f"{source}: not a regular file: an embeddings archive is read from a file (.npz)")
    if info.st_size == 0:
        raise ArchiveError(f"{source}: an empty file, not an embeddings archive (.npz from dymn-tag --embeddings)")


def _members(source: Path) -> dict[str, Member]:
    """Every array's header, checked against the file's size and the known keys' kinds."""
    members: dict[str, Member] = {}
    on_disk = os.stat(source).st_size
    with zipfile.ZipFile(source) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ArchiveError(f"{source}: {len(infos)} arrays: not an embeddings archive (at most {MAX_MEMBERS})")
        for info in infos:
            name = info.filename.removesuffix(".npy")
            with archive.open(info) as stream:
                version = np.lib.format.read_magic(stream)
                if version not in HEADER_READERS:
                    raise ArchiveError(f"{source}: {name}: an array format this reader does not know ({version})")
                shape, fortran, dtype = HEADER_READERS[version](stream)
                header_size = stream.tell()
            if info.compress_size > on_disk:
                raise ArchiveError(f"{source}: {name} claims {info.compress_size} bytes in a file of {on_disk}: damaged")
            _check_member(source, name, shape, dtype, info, header_size)
            stored = info.compress_type == zipfile.ZIP_STORED and not fortran
            members[name] = Member(tuple(shape), dtype, _data_offset(source, info, header_size) if stored else None)
    for key in ("paths", "clip_embeddings"):
        if key not in members:
            raise ArchiveError(f"{source}: not an embeddings archive: it has no {key} (written by dymn-tag --embeddings)")
    return members


def _check_member(source: Path, name: str, shape: Any, dtype: np.dtype, info: zipfile.ZipInfo, header_size: int) -> None:
    if dtype.hasobject:
        raise ArchiveError(f"{source}: {name} holds Python objects (a pickle): refused, archives hold plain arrays only")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared != info.file_size - header_size:
        raise ArchiveError(f"{source}: {name} declares {declared} bytes but holds {info.file_size - header_size}: damaged")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
        raise ArchiveError(f"{source}: {name} would expand {info.file_size} bytes from {info.compress_size}: refused")
    if name in KINDS:
        kinds, dimensions = KINDS[name]
        if dtype.kind not in kinds or len(shape) != dimensions:
            raise ArchiveError(f"{source}: {name} is {dtype} with shape {tuple(shape)}: not an embeddings archive's {name}")
        if name in EMBEDDINGS and shape[1] < 1:
            raise ArchiveError(f"{source}: {name} have no dimensions")


def _data_offset(source: Path, info: zipfile.ZipInfo, header_size: int) -> int:
    with open(source, "rb") as stream:
        stream.seek(info.header_offset)
        local = stream.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise ArchiveError(f"{source}: a damaged zip (a member's header is missing)")
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_length + extra_length + header_size


def _read_member(source: Path, name: str) -> np.ndarray:
    with zipfile.ZipFile(source) as archive, archive.open(f"{name}.npy") as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def _check_fit(archive: EmbeddingsArchive) -> None:
    """The arrays fit together: one path per clip, every window of a clip, finite times and settings."""
    source, members, arrays = archive.path, archive.members, archive.arrays
    clips = members["clip_embeddings"].shape[0]
    if len(arrays["paths"]) != clips:
        raise ArchiveError(f"{source}: {len(arrays['paths'])} paths for {clips} clip embeddings: damaged")
    found = [k for k in WINDOW_KEYS if k in members]
    if found and len(found) != len(WINDOW_KEYS):
        raise ArchiveError(f"{source}: window arrays {', '.join(sorted(set(WINDOW_KEYS) - set(found)))} missing: damaged")
    if found:
        rows = members["window_embeddings"].shape[0]
        if members["window_embeddings"].shape[1] != archive.width:
            raise ArchiveError(f"{source}: window and clip embeddings differ in width: damaged")
        index, starts, ends = arrays["window_path_index"], arrays["window_starts"], arrays["window_ends"]
        if not len(index) == len(starts) == len(ends) == rows:
            raise ArchiveError(f"{source}: the window arrays differ in length: damaged")
        if rows and (index.min() < 0 or index.max() >= clips):
            raise ArchiveError(f"{source}: a window belongs to no clip: damaged")
        if not (np.isfinite(starts).all() and np.isfinite(ends).all() and (ends >= starts).all()):
            raise ArchiveError(f"{source}: window times that are not finite, or end before they start: damaged")
    for key in SETTINGS:
        value = archive.setting(key)
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ArchiveError(f"{source}: {key} is {value}: not a positive number of seconds")
