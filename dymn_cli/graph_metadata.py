"""What an exported ONNX graph says about itself: the contract between `dymn-tag export`, which writes
it into the graph's `metadata_props`, and the ONNX engine, the torch-free example and the web page,
which read it. Free of torch and of onnx: plain strings in, plain strings out.

The graph: input `waveform` float32 `[batch, samples]` (mono, `sample_rate`), outputs `logits`
`[batch, classes]` and `embedding` `[batch, dim]`; batch and samples are dynamic. Scores are
`activation(logits)`: an independent sigmoid per class (AudioSet, a multi-label head) or a softmax (a
single-label head).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from dymn_cli.errors import GraphError

INPUT = "waveform"
LOGITS = "logits"
EMBEDDING = "embedding"
ACTIVATIONS = ("sigmoid", "softmax")
FORMAT = "dymn-cli-onnx/1"
"""`format` in the metadata: what tells a graph of ours from a graph of another tool."""


class GraphMetadataError(GraphError):
    """A graph whose metadata is missing or malformed: not a graph `dymn-tag export` wrote."""


@dataclass(frozen=True)
class GraphMetadata:
    labels: tuple[str, ...]
    mids: tuple[str, ...]
    """The AudioSet MID of each class; for a head's own classes the id the outputs give them,
    `head:<label>` (`audioset.vocabulary`). Readers go by the labels for classes other than AudioSet's."""
    model: str
    """The model's name (`dymn10_as`, `dymn04_as+mn04_as` for an ensemble), or a checkpoint's file name."""
    checkpoint_sha256: str
    """SHA-256 of the checkpoint file(s) it was exported from, `+`-joined for an ensemble."""
    window: float
    hop: float
    sample_rate: int = 32_000
    activation: str = "sigmoid"
    opset: int = 0

    def to_props(self) -> dict[str, str]:
        """The `metadata_props` entries (all strings; lists as JSON)."""
        return {
            "format": FORMAT,
            "labels": json.dumps(list(self.labels), ensure_ascii=False),
            "mids": json.dumps(list(self.mids)),
            "model": self.model,
            "checkpoint_sha256": self.checkpoint_sha256,
            "sample_rate": str(self.sample_rate),
            "window": repr(float(self.window)),
            "hop": repr(float(self.hop)),
            "activation": self.activation,
            "opset": str(self.opset),
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str) -> GraphMetadata:
        """Read and check what `to_props` wrote; `source` names the file in the one-line error."""
        if props.get("format") != FORMAT:
            raise GraphMetadataError(f"{source}: not a graph written by `dymn-tag export` (no {FORMAT!r} in its metadata)")
        try:
            labels = _string_list(props["labels"])
            mids = _string_list(props["mids"])
            metadata = cls(
                labels=labels,
                mids=mids,
                model=props["model"],
                checkpoint_sha256=props["checkpoint_sha256"],
                sample_rate=int(props["sample_rate"]),
                window=float(props["window"]),
                hop=float(props["hop"]),
                activation=props["activation"],
                opset=int(props.get("opset", "0")),
            )
        except KeyError as missing:
            raise GraphMetadataError(f"{source}: its metadata lacks {missing.args[0]!r}") from None
        except (ValueError, RecursionError) as error:  # (JSON nested beyond the parser's depth: RecursionError)
            raise GraphMetadataError(f"{source}: malformed metadata ({error})") from None
        metadata.check(source)
        return metadata

    def check(self, source: str) -> None:
        problem = None
        if not self.labels or len(self.labels) != len(self.mids):
            problem = f"{len(self.labels)} labels for {len(self.mids)} MIDs"
        elif self.sample_rate != 32_000:
            problem = f"sample rate {self.sample_rate}, where the models run at 32000 Hz"
        elif not (math.isfinite(self.window) and math.isfinite(self.hop) and 0 < self.hop and 0 < self.window <= 3600):
            problem = f"window {self.window} s, hop {self.hop} s"
        elif self.activation not in ACTIVATIONS:
            problem = f"activation {self.activation!r} (expected one of {', '.join(ACTIVATIONS)})"
        if problem:
            raise GraphMetadataError(f"{source}: malformed metadata ({problem})")


def _string_list(text: str) -> tuple[str, ...]:
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("a JSON list of strings was expected")
    return tuple(value)
