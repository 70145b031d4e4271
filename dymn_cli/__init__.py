"""dymn-cli: AudioSet tagging with the published DyMN and MobileNetV3 models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dymn_cli.version import __version__

__all__ = ["OnnxTagger", "Tagger", "TagResult", "TagFailure", "__version__"]

if TYPE_CHECKING:
    from .onnx_tagger import OnnxTagger
    from .results import TagFailure, TagResult
    from .tagger import Tagger


def __getattr__(name: str) -> Any:
    # Lazy: `import dymn_cli` stays light (decode workers and `--help` never import torch).
    if name == "Tagger":
        try:
            from .tagger import Tagger
        except ModuleNotFoundError as error:
            if error.name != "torch":
                raise
            raise ModuleNotFoundError(
                "dymn_cli.Tagger needs torch: pip install 'dymn-cli[torch]'; without torch, "
                "dymn_cli.OnnxTagger('MODEL.onnx') tags with a graph that `dymn-tag export` wrote",
                name="torch",
            ) from None
        return Tagger
    if name == "OnnxTagger":  # (an exported graph in onnxruntime: never imports torch)
        from .onnx_tagger import OnnxTagger

        return OnnxTagger
    if name in ("TagResult", "TagFailure"):
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module 'dymn_cli' has no attribute {name!r}")
