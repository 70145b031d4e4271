"""The two network families of the published AudioSet checkpoints, and loading a state dict into them.

    spec = infer_spec(state_dict)            # ModelSpec(family="dymn", width=1.0, num_classes=527)
    model = build_model(state_dict)          # strict load, eval mode
    logits, embedding = model(mels)          # [B, 1, 128, T] -> [B, 527], [B, embedding_dim]

Everything a user can get wrong about a weights file surfaces as `WeightsError` with a readable message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from dymn_cli.errors import UsageError, WeightsError
from dymn_cli.models.common import TaggingNet, make_divisible, md
from dymn_cli.models.dymn import DyMN
from dymn_cli.models.mn import MN

__all__ = [
    "DYMN_WIDTHS",
    "MN_WIDTHS",
    "DyMN",
    "MN",
    "ModelSpec",
    "TaggingNet",
    "build_model",
    "create_model",
    "infer_spec",
    "make_divisible",
    "md",
]

Family = Literal["dymn", "mn"]

# Widths of the published checkpoints (dymn04/10/20, mn01 ... mn40).
DYMN_WIDTHS: tuple[float, ...] = (0.4, 1.0, 2.0)
MN_WIDTHS: tuple[float, ...] = (0.1, 0.2, 0.4, 0.5, 1.0, 2.0, 3.0, 4.0)
_WIDTHS: dict[str, tuple[float, ...]] = {"dymn": DYMN_WIDTHS, "mn": MN_WIDTHS}
_FAMILY_NAMES = {"dymn": "DyMN", "mn": "MobileNetV3 (MN)"}

# Keys that identify a family and fix its width: (first conv, last conv, head hidden layer, head output).
_SIGNATURE_KEYS: dict[str, tuple[str, str, str, str]] = {
    "dymn": ("in_c.0.weight", "out_c.0.weight", "classifier.2.weight", "classifier.5.weight"),
    "mn": ("features.0.0.weight", "features.16.0.weight", "classifier.2.weight", "classifier.5.weight"),
}


@dataclass(frozen=True)
class ModelSpec:
    """What a state dict is: network family, width multiplier, number of output classes."""

    family: Family
    width: float
    num_classes: int = 527

    @property
    def name(self) -> str:
        """The authors' short name, e.g. `dymn10` or `mn04`."""
        return f"{self.family}{round(self.width * 10):02d}"


def create_model(*, family: str, width: float, num_classes: int = 527) -> TaggingNet:
    """A randomly initialised network of the given family and width, in eval mode (inference only)."""
    if family not in _WIDTHS:
        raise UsageError(f"unknown model family {family!r}; expected one of {sorted(_WIDTHS)}")
    if not width > 0:
        raise UsageError(f"width must be positive, got {width!r}")
    if num_classes < 1:
        raise UsageError(f"num_classes must be at least 1, got {num_classes!r}")
    model = DyMN(width=width, num_classes=num_classes) if family == "dymn" else MN(width=width, num_classes=num_classes)
    return model.eval()


def _expected_signature(width: float) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Shapes of the first conv, last conv and head hidden layer weights (the same for both families)."""
    first, last, hidden = md(16 * width), md(160 * width), md(1280 * width)
    return (first, 1, 3, 3), (6 * last, last, 1, 1), (hidden, 6 * last)


def _entries(n: int) -> str:
    return "1 entry" if n == 1 else f"{n} entries"


def _describe_keys(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def _foreign_hint(state_dict: Mapping[Any, Any]) -> str:
    keys = [str(k) for k in state_dict]
    non_tensors = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        return (
            f"; some entries are not tensors ({_describe_keys([str(k) for k in non_tensors])}): this looks like a "
            "training checkpoint, whose state dict is one of its entries"
        )
    prefixes = {k.split(".", 1)[0] for k in keys if "." in k}
    if len(prefixes) == 1 and keys:
        prefix = prefixes.pop()
        if prefix not in ("layers", "features"):
            return f"; every key starts with {prefix + '.'!r}: the weights may be wrapped and need that prefix removed"
    return ""


def infer_spec(state_dict: Mapping[str, Any]) -> ModelSpec:
    """Family, width and class count of a DyMN or MobileNetV3 state dict, from its key names and shapes."""
    if not isinstance(state_dict, Mapping):
        raise WeightsError(f"expected a state dict (a mapping of names to tensors), got {type(state_dict).__name__}")
    keys = [str(k) for k in state_dict]
    if "in_c.0.weight" in state_dict and any(k.startswith("layers.") for k in keys):
        family = "dymn"
    elif "features.0.0.weight" in state_dict:
        family = "mn"
    else:
        raise WeightsError(
            f"not a DyMN or MobileNetV3 state dict: it has {len(keys)} entries"
            + (f" ({_describe_keys(keys)})" if keys else "")
            + "; expected keys such as 'in_c.0.weight' and 'layers.0.depth_conv.weight' (DyMN) "
            "or 'features.0.0.weight' and 'features.1.block.0.0.weight' (MobileNetV3)" + _foreign_hint(state_dict)
        )

    name = _FAMILY_NAMES[family]
    signature_keys = _SIGNATURE_KEYS[family]
    missing = [k for k in signature_keys if k not in state_dict]
    if missing:
        hint = ""
        if "classifier.0.weight" in state_dict or "classifier.1.weight" in state_dict:
            hint = " (its classifier is not the MLP head of the supported checkpoints; a fully-convolutional head?)"
        raise WeightsError(f"{name} state dict without {_describe_keys(missing)}{hint}; cannot tell its width")
    tensors = [state_dict[k] for k in signature_keys]
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise WeightsError(f"{name} state dict whose entries {_describe_keys(list(signature_keys))} are not tensors")
    first, last, hidden, output = (tuple(t.shape) for t in tensors)
    found = (first, last, hidden)

    for width in _WIDTHS[family]:
        if _expected_signature(width) == found:
            if len(output) != 2 or output[1] != hidden[0]:
                raise WeightsError(
                    f"{name} state dict: classifier.5.weight has shape {list(output)}, expected [num_classes, {hidden[0]}]"
                )
            return ModelSpec(family=family, width=width, num_classes=output[0])

    known = ", ".join(f"{w:g}" for w in _WIDTHS[family])
    width_1 = ", ".join(str(list(shape)) for shape in _expected_signature(1.0))
    raise WeightsError(
        f"{name} state dict of an unsupported width or variant: {signature_keys[0]} {list(first)}, "
        f"{signature_keys[1]} {list(last)}, {signature_keys[2]} {list(hidden)}; none of the published widths "
        f"({known}) has these shapes (width 1 expects {width_1})"
    )


def _check_entries(model: TaggingNet, state_dict: Mapping[str, Any], spec: ModelSpec) -> None:
    """Compare names and shapes before loading, so that a mismatch reads as one line, not a torch dump."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [str(k) for k in state_dict if k not in expected]
    wrong = [
        f"{k} {list(v.shape)} (expected {list(expected[k].shape)})"
        for k, v in state_dict.items()
        if k in expected and (not isinstance(v, torch.Tensor) or v.shape != expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {_entries(len(missing))} ({_describe_keys(missing, 3)})")
    if unexpected:
        problems.append(f"unexpected {_entries(len(unexpected))} ({_describe_keys(unexpected, 3)})")
    if wrong:
        problems.append(f"wrong shape in {_entries(len(wrong))} ({'; '.join(wrong[:3])})")
    if problems:
        raise WeightsError(
            f"state dict looks like {spec.name} ({_FAMILY_NAMES[spec.family]}, width {spec.width:g}, "
            f"{spec.num_classes} classes) but does not match it: " + ", ".join(problems)
        )


def build_model(state_dict: Mapping[str, Any]) -> TaggingNet:
    """The network a state dict belongs to, with the weights loaded strictly, in eval mode."""
    spec = infer_spec(state_dict)
    model = create_model(family=spec.family, width=spec.width, num_classes=spec.num_classes)
    _check_entries(model, state_dict, spec)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # e.g. a tensor that cannot be copied into its parameter
        raise WeightsError(f"cannot load the {spec.name} state dict: {error}") from error
    return model.eval()
