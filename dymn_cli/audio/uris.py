"""Inputs named by URI (`s3://bucket/audio`, `gs://...`, `hdfs://...`, `file:///...`): anything that
pyarrow's filesystems read. Folders are listed in the order a local folder walk takes (see
`paths.walk_order_key`); files are read whole into memory and decoded from the bytes.

pyarrow is imported only when a URI is met (`pip install 'dymn-cli[ray]'` brings it).
"""

from __future__ import annotations

import os
import re
from typing import Any

from dymn_cli.audio.paths import AUDIO_EXTENSIONS, walk_order_key
from dymn_cli.errors import AudioError, UsageError

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_uri(path: object) -> bool:
    """`scheme://...` with a scheme of two characters or more (so never a Windows drive letter)."""
    return isinstance(path, str) and _URI.match(path) is not None


def _pyarrow_fs() -> Any:
    try:
        import pyarrow.fs as pafs
    except ImportError as error:
        raise UsageError("reading URIs (s3://, gs://, ...) needs pyarrow: pip install 'dymn-cli[ray]'") from error
    return pafs


def _filesystem(uri: str) -> tuple[Any, str]:
    return _pyarrow_fs().FileSystem.from_uri(uri)


def list_uri(uri: str, *, recursive: bool = True) -> list[str] | None:
    """The audio files a URI names: itself if it is a file, else the audio files below it (by
    extension) in folder-walk order; None if nothing is there. Raises `OSError`/`ValueError` when the
    filesystem cannot be reached or the URI is malformed."""
    pafs = _pyarrow_fs()
    filesystem, root = _filesystem(uri)
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        return None
    if info.type != pafs.FileType.Directory:
        return [uri]
    prefix = uri.rstrip("/")
    found = []
    for entry in filesystem.get_file_info(pafs.FileSelector(root, recursive=recursive)):
        if entry.type != pafs.FileType.File or os.path.splitext(entry.base_name)[1].lower() not in AUDIO_EXTENSIONS:
            continue
        relative = entry.path[len(root.rstrip("/")) :].lstrip("/")
        found.append(f"{prefix}/{relative}")
    return sorted(found, key=walk_order_key)


def read_uri(uri: str) -> bytes:
    """The bytes of the file a URI names; `AudioError` (one line, naming the URI) if it cannot be read."""
    try:
        filesystem, path = _filesystem(uri)
        with filesystem.open_input_stream(path) as stream:
            data = stream.read()
    except FileNotFoundError:
        raise AudioError(f"{uri}: file not found") from None
    except (OSError, ValueError) as error:
        raise AudioError(f"{uri}: cannot read: {one_line(error)}") from None
    if not data:
        raise AudioError(f"{uri}: empty file (0 bytes)")
    return bytes(data)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
