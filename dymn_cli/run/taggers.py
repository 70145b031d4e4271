"""The tagger a run asks for, built only when the run needs it: after the inputs and options are
checked and the decode workers started, since this is where torch is imported and the model loads."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TaggerChoice", "build_tagger", "graph_renamed"]

Status = Callable[[str], AbstractContextManager[Any]]
"""Shows a message while a slow step runs (`cli.progress.RunProgress.status`)."""


def _no_status(message: str) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


@dataclass(frozen=True)
class TaggerChoice:
    """The model options of a run: a published model by name (or several, comma-separated), or
    checkpoint files; where it runs; a head; Ray."""

    model: str
    weights: tuple[str, ...] = ()
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    batch_size: int | None = None
    sha256: str | None = None
    with_audioset: bool = False
    ray_address: str | None = None
    actors: int | None = None


@contextlib.contextmanager
def graph_renamed(count: int) -> Iterator[None]:
    """Where a checkpoint given to `--weights` is an ONNX graph: `--weights` tells graphs by their
    .onnx extension, so the CLI's advice is to rename it (the Python API's, to open it with OnnxTagger)."""
    from dymn_cli.errors import GraphNotCheckpoint

    try:
        yield
    except GraphNotCheckpoint as error:
        name = Path(str(error.path)).with_suffix(".onnx").name
        alone = "" if count <= 1 else ", alone (a graph is not an ensemble member)"
        raise error.instead(f"rename it {name} to tag with it{alone}") from None


def build_tagger(choice: TaggerChoice, *, head: Any = None, progress: bool = False, status: Status = _no_status) -> Any:
    """The `Tagger` (or `RayTagger`) of `choice`, with a spinner (`status`) while torch is imported and
    while a cached or local model loads (a download shows a bar of its own)."""
    tagger_class: Any
    with status("importing torch"):
        if choice.ray_address is not None:
            from dymn_cli.inference.distributed import RayOptions
            from dymn_cli.ray_tagger import RayTagger

            tagger_class = functools.partial(RayTagger, ray=RayOptions(address=choice.ray_address, actors=choice.actors))
        else:
            from dymn_cli.tagger import Tagger

            tagger_class = Tagger
        from dymn_cli.models.weights import is_cached

        cached = bool(choice.weights) or is_cached(choice.model)
    with status("loading the model") if cached else contextlib.nullcontext(), graph_renamed(len(choice.weights)):
        return tagger_class(
            None if choice.weights else choice.model,
            weights=list(choice.weights) or None,
            device=choice.device,
            batch_size=choice.batch_size,
            precision=choice.precision,
            compile=choice.compile,
            sha256=choice.sha256,
            progress=progress,
            head=head,
            with_audioset=choice.with_audioset,
        )
