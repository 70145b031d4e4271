"""The classes a run reports: a `Vocabulary`, the column order of every result's scores.

By default it is the 527 AudioSet classes in the models' output order. With a classification head
(`dymn_cli.head`) it is the head's classes alone, or the AudioSet classes followed by the head's. A
result carries its vocabulary (`TagResult.classes`) and every writer names labels from it, so a
head's classes reach every output format with no special case.

Each class has a `name`, an `id` (the AudioSet mid, or `head:<name>` for a head's class; written in
the outputs' `mid` column) and a `source` (`"audioset"` or `"head"`). AudioSet classes always come
first, so an AudioSet class keeps its model output index as its index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import overload

from dymn_cli.audioset.labels import audioset_classes

__all__ = ["AUDIOSET", "HEAD", "HEAD_ID_PREFIX", "LabelClass", "Vocabulary"]

AUDIOSET = "audioset"
HEAD = "head"
HEAD_ID_PREFIX = "head:"


@dataclass(frozen=True)
class LabelClass:
    """One reported class: its column in the scores, id, display name and where it comes from."""

    index: int
    id: str
    name: str
    source: str = AUDIOSET

    @property
    def mid(self) -> str:
        """The id under the name the outputs use for it (`mid`), for AudioSet classes their mid."""
        return self.id

    @property
    def column(self) -> str:
        """Its column in a wide table: an AudioSet class's name; a head's class its id, `head:<name>`.
        So a head's class never shares a column name with an AudioSet class (`Speech`, or `hiss`
        beside AudioSet's `Hiss`: SQL matches names without case) nor with `path` or `duration`;
        heads' names differ in more than case (models.head), AudioSet's do too."""
        return self.name if self.source == AUDIOSET else self.id


class Vocabulary(Sequence[LabelClass]):
    """An ordered, immutable list of classes (`vocabulary[i]` names column `i` of the scores)."""

    def __init__(self, classes: Sequence[LabelClass]) -> None:
        self.classes = tuple(classes)
        if [c.index for c in self.classes] != list(range(len(self.classes))):
            raise ValueError("a vocabulary's classes must be indexed 0, 1, ... in order")
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise ValueError("a vocabulary's class ids must be unique")

    @classmethod
    def audioset(cls) -> Vocabulary:
        """The 527 AudioSet classes, in the models' output order."""
        return _audioset_vocabulary()

    @classmethod
    def with_head(cls, names: Sequence[str], *, audioset: bool = False) -> Vocabulary:
        """A head's classes, after the AudioSet classes when `audioset`."""
        base = list(_audioset_vocabulary().classes) if audioset else []
        extra = [LabelClass(len(base) + n, HEAD_ID_PREFIX + name, name, HEAD) for n, name in enumerate(names)]
        return cls(base + extra)

    @property
    def has_audioset(self) -> bool:
        """Whether the AudioSet classes are here (they are then the first 527)."""
        return bool(self.classes) and self.classes[0].source == AUDIOSET

    @property
    def n_audioset(self) -> int:
        return sum(1 for c in self.classes if c.source == AUDIOSET)

    def indices(self, source: str) -> list[int]:
        """Indices of the classes from `source`."""
        return [c.index for c in self.classes if c.source == source]

    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @overload
    def __getitem__(self, index: int) -> LabelClass: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[LabelClass]: ...

    def __getitem__(self, index: int | slice) -> LabelClass | Sequence[LabelClass]:
        return self.classes[index]

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[LabelClass]:
        return iter(self.classes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.classes == other.classes

    def __hash__(self) -> int:
        return hash(self.classes)

    def __repr__(self) -> str:
        sources = sorted({c.source for c in self.classes})
        return f"Vocabulary({len(self)} classes from {', '.join(sources) or 'nowhere'})"


@lru_cache(maxsize=1)
def _audioset_vocabulary() -> Vocabulary:
    return Vocabulary([LabelClass(c.index, c.mid, c.name, AUDIOSET) for c in audioset_classes()])
