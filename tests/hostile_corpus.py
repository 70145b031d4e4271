"""Hostile inputs for the tests of #14: every container the decoders read, headers that lie, damaged
copies, special files and odd names. Built on `audio_factory` (which writes the valid files).

    from tests.hostile_corpus import container_seeds, lying_wavs, damaged_copies, special_files

Everything is small (a fraction of a second of audio) so that a test can run the whole corpus.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.audio_factory import make_audio_file, make_video_file, sine

SECONDS = 0.4

# name -> how to write it: (soundfile format, subtype) or "av" (audio_factory's PyAV encoders) or "video"
CONTAINERS: dict[str, object] = {
    "pcm16.wav": ("WAV", "PCM_16"),
    "float.wav": ("WAV", "FLOAT"),
    "extensible.wav": ("WAVEX", "PCM_24"),
    "rf64.wav": ("RF64", "PCM_16"),
    "sony.w64": ("W64", "PCM_16"),
    "apple.aiff": ("AIFF", "PCM_16"),
    "apple.caf": ("CAF", "PCM_16"),
    "lossless.flac": ("FLAC", "PCM_16"),
    "vorbis.ogg": ("OGG", "VORBIS"),
    "opus.opus": "av",
    "layer3.mp3": ("MP3", "MPEG_LAYER_III"),
    "aac.m4a": "av",
    "opus.mka": "av",
    "opus.webm": "av",
    "video.mp4": "video",
    "video.mkv": "video",
    "video.webm": "video",
}


def container_seeds(folder: Path) -> dict[str, Path]:
    """One valid short file per container and codec above (stereo, 44.1 or 48 kHz)."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    for name, how in CONTAINERS.items():
        path = folder / name
        if how == "av":
            make_audio_file(path, seconds=SECONDS, sample_rate=48_000, channels=2)
        elif how == "video":
            make_video_file(path, seconds=SECONDS)
        else:
            fmt, subtype = how  # type: ignore[misc]
            sf.write(path, sine(SECONDS, 44_100, 2), 44_100, format=fmt, subtype=subtype)
        made[name] = path
    return made


# --------------------------------------------------------------------------- headers that lie


def _wav(subtype: str = "PCM_16", fmt: str = "WAV") -> bytearray:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f".hostile-{os.getpid()}.wav"
    try:
        sf.write(path, sine(SECONDS, 16_000, 1), 16_000, format=fmt, subtype=subtype)
        return bytearray(path.read_bytes())
    finally:
        path.unlink(missing_ok=True)


def _patched(data: bytearray, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def lying_wavs() -> dict[str, bytes]:
    """WAV files whose header says something the data does not: sizes, rates, channels, format tag,
    bits per sample, the extensible format's GUID. (Offsets: canonical 44-byte PCM header.)"""
    wav = _wav()
    ext = _wav("PCM_24", "WAVEX")
    guid_at = ext.find(b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71") - 2  # KSDATAFORMAT_SUBTYPE_*
    unknown_guid = bytearray(ext)
    unknown_guid[guid_at : guid_at + 16] = bytes(range(0x40, 0x50))
    return {
        "riff-size-huge.wav": _patched(wav, 4, "<I", 0xFFFFFFFF),
        "riff-size-zero.wav": _patched(wav, 4, "<I", 0),
        "data-size-huge.wav": _patched(wav, 40, "<I", 0xFFFFFFF0),
        "data-size-zero.wav": _patched(wav, 40, "<I", 0),
        "rate-zero.wav": _patched(wav, 24, "<I", 0),
        "rate-one.wav": _patched(wav, 24, "<I", 1),
        "rate-4ghz.wav": _patched(wav, 24, "<I", 4_000_000_000),
        "byte-rate-zero.wav": _patched(wav, 28, "<I", 0),
        "channels-zero.wav": _patched(wav, 22, "<H", 0),
        "channels-65535.wav": _patched(wav, 22, "<H", 65535),
        "format-tag-unknown.wav": _patched(wav, 20, "<H", 0x1234),
        "format-tag-zero.wav": _patched(wav, 20, "<H", 0),
        "bits-zero.wav": _patched(wav, 34, "<H", 0),
        "bits-255.wav": _patched(wav, 34, "<H", 255),
        "block-align-zero.wav": _patched(wav, 32, "<H", 0),
        "fmt-size-huge.wav": _patched(wav, 16, "<I", 0x7FFFFFFF),
        "extensible-guid-unknown.wav": bytes(unknown_guid),
        "header-only.wav": bytes(wav[:44]),
        "riff-only.wav": b"RIFF\x00\x00\x00\x00WAVE",
    }


# --------------------------------------------------------------------------- damaged copies


def damaged_copies(name: str, data: bytes, *, seed: int = 0) -> dict[str, bytes]:
    """Truncated (in the header, early, half way, one byte short) and bit-flipped versions of `data`."""
    rng = np.random.default_rng(seed)
    stem, ext = os.path.splitext(name)
    out = {
        f"{stem}-cut12{ext}": data[:12],
        f"{stem}-cut100{ext}": data[:100],
        f"{stem}-half{ext}": data[: len(data) // 2],
        f"{stem}-short1{ext}": data[:-1],
    }
    for n, flips in ((1, 8), (2, 64)):
        flipped = bytearray(data)
        for at in rng.integers(0, len(data), flips):
            flipped[at] ^= 1 << int(rng.integers(0, 8))
        out[f"{stem}-flip{n}{ext}"] = bytes(flipped)
    header = bytearray(data)
    for at in rng.integers(0, min(len(data), 64), 6):
        header[at] = int(rng.integers(0, 256))
    out[f"{stem}-header{ext}"] = bytes(header)
    return out


# --------------------------------------------------------------------------- special files and odd names


def special_files(folder: Path) -> dict[str, Path]:
    """A FIFO, a Unix socket, a link to /dev/zero, a dangling link and a link loop, all named like audio.

    The socket's listening end is closed once bound: the path stays, and nobody answers."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "fifo": folder / "fifo.wav",
        "socket": folder / "socket.wav",
        "zero": folder / "zero.wav",
        "dangling": folder / "dangling.wav",
        "loop": folder / "loop.wav",
    }
    os.mkfifo(made["fifo"])
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(os.fspath(made["socket"]))
    server.close()
    os.symlink("/dev/zero", made["zero"])
    os.symlink(folder / "nowhere.wav", made["dangling"])
    os.symlink(made["loop"], made["loop"])
    return made


ODD_NAMES: tuple[bytes, ...] = (
    b"bad\xff\xfe.wav",  # not UTF-8
    b"latin1-caf\xe9.wav",  # Latin-1, as old Windows zips leave them
    b"cr\rname.wav",  # a carriage return: would overwrite the terminal line
    b"esc\x1b[31mred\x1b[0m.wav",  # an escape sequence: would colour the terminal
    b"new\nline.wav",
    b"tab\tand \\backslash\\x80.wav",  # a literal backslash escape that must not be read as one
    b"-leading-dash.wav",
    b"concat:colon.wav",  # FFmpeg would read this as a protocol URL if given the name
    b"\xe2\x80\xaeright-to-left.wav",  # U+202E: flips how a terminal shows what follows
    b"x" * 240 + b".wav",  # near the 255-byte limit of a name
)


def odd_named_copies(folder: Path, data: bytes) -> list[str]:
    """`data` under every name in `ODD_NAMES`; returns the paths as `os.fsdecode` gives them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for raw in ODD_NAMES:
        path = os.path.join(os.fsencode(folder), raw)
        with open(path, "wb") as stream:
            stream.write(data)
        paths.append(os.fsdecode(path))
    return paths
