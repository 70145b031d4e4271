"""The published checkpoints: a registry of the release and where its files are cached.

The registry names the AudioSet checkpoints of the EfficientAT release v0.0.1 (Schmid, Koutini, Widmer):
three DyMNs and nine MobileNetV3s. A record knows its file name, architecture and front end;
`download.download` puts the file in a per-user cache, verifying it by SHA-256;
`checkpoints.load_checkpoint` reads it. Free of torch.

Cache layout (directory from `cache_dir()`):
    <filename>          the checkpoint, only ever created by an atomic rename of a complete download
    <filename>.sha256   its SHA-256 as `sha256sum` writes it, recorded when it was downloaded
    <filename>.lock     the lock that serialises downloads of that file between processes (kept)

Environment: `DYMN_CACHE_DIR` (cache directory), `XDG_CACHE_HOME`, `DYMN_RELEASE_URL` (a mirror of the
release: any URL that serves the release's file names below it, `file://` included).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dymn_cli.errors import UsageError
from dymn_cli.models.frontend_config import FrontEndConfig

DEFAULT_RELEASE_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
RELEASE_URL_ENV = "DYMN_RELEASE_URL"
CACHE_DIR_ENV = "DYMN_CACHE_DIR"
CHUNK = 1 << 20
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")

Family = Literal["dymn", "mn"]


def release_url() -> str:
    """Base URL of the release (`$DYMN_RELEASE_URL` if set), always ending in '/'."""
    base = os.environ.get(RELEASE_URL_ENV) or DEFAULT_RELEASE_URL
    return base if base.endswith("/") else base + "/"


@functools.cache
def _count_parameters(family: str, width: float) -> int:
    import torch  # late: the registry must not need torch or the models to import

    from dymn_cli.models.build import create_model

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
    return Path(cache if cache is not None else cache_dir()) / as_record(record_or_name).filename


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def as_record(record_or_name: WeightsRecord | str) -> WeightsRecord:
    return record_or_name if isinstance(record_or_name, WeightsRecord) else get_record(record_or_name)


def check_sha256(value: str) -> str:
    digest = value.strip().lower()
    if not SHA256_PATTERN.fullmatch(digest):
        raise UsageError(f"not a SHA-256 hash (64 hexadecimal digits): {value!r}")
    return digest


def sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)
