"""dymn-cli: AudioSet tagging with the published DyMN and MobileNetV3 models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Tagger", "TagResult", "TagFailure", "__version__"]

if TYPE_CHECKING:
    from .tagger import TagFailure, Tagger, TagResult


def __getattr__(name: str) -> Any:
    # Lazy: `import dymn_cli` stays light (decode workers and `--help` never import torch).
    if name in ("Tagger", "TagResult", "TagFailure"):
        from . import tagger

        return getattr(tagger, name)
    raise AttributeError(f"module 'dymn_cli' has no attribute {name!r}")
