"""How numbers of things are said in messages: "1 class", "3 classes", never "3 class(es)"."""

from __future__ import annotations

__all__ = ["counted"]

_IRREGULAR = {"entry": "entries", "class": "classes", "match": "matches", "this": "these"}


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, in the plural unless `n` is 1 (`plural` where adding "s" is wrong and the
    noun is not one of the few this module knows)."""
    if n == 1:
        return f"{n} {noun}"
    if plural is None:
        head, _, last = noun.rpartition(" ")
        plural = (head + " " if head else "") + _IRREGULAR.get(last, last + "s")
    return f"{n} {plural}"
