"""Which paths hold audio and in which order a folder is walked: shared by the input listing
(local folders and URIs), the decoders and the merge of outputs."""

from __future__ import annotations

import os

STDIN = "-"
"""The input name that means audio on standard input."""

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        # libsndfile
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".snd",
        ".caf",
        ".w64",
        ".rf64",
        ".voc",
        # FFmpeg (PyAV): audio containers and codecs
        ".m4a",
        ".m4b",
        ".m4r",
        ".aac",
        ".wma",
        ".mka",
        ".weba",
        ".amr",
        ".awb",
        ".3ga",
        ".wv",
        ".ac3",
        ".eac3",
        ".dts",
        ".mp2",
        ".ape",
        ".tta",
        ".mpc",
        ".spx",
        ".ra",
        # FFmpeg (PyAV): the audio track of video files
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".3gp",
        ".3g2",
        ".wmv",
        ".asf",
        ".flv",
        ".mpg",
        ".mpeg",
    }
)
"""File extensions (lowercase, with the dot) a folder walk should treat as audio. ``.ts`` is left out
on purpose (TypeScript sources far outnumber MPEG transport streams); such files still decode when
named explicitly."""


def is_audio_path(path: str | os.PathLike[str]) -> bool:
    """Whether a folder walk should pick up `path`, by its extension (case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in AUDIO_EXTENSIONS


def walk_order_key(path: str) -> tuple[tuple[int, str], ...]:
    """Sort key that orders paths as a sorted folder walk visits them: in each folder, its files by
    name first, then its subfolders by name (see `run.inputs.walk_audio_files`). URIs sort the same way."""
    parts = path.replace(os.sep, "/").split("/") if os.sep != "/" else path.split("/")
    return tuple((1, part) for part in parts[:-1]) + ((0, parts[-1]),)
