"""Which result belongs to which truth entry, and which truth labels are which classes.

Paths match when they name the same file (resolved: the truth's relative to its own folder, the
results' to the current one), or when one path's components end the other's (`clips/a.wav` and
`/data/clips/a.wav`), the longest such match winning; file names (`STEM` truth: Raven and Audacity
files) match a result's file name with or without its extension; YouTube IDs match the result whose
file name contains one (`Y--4gqARaEJE_30.000.wav`). A match that two results fit equally is ambiguous
and left out (with a warning), as is a result that a second truth entry would take.
"""

from __future__ import annotations

import difflib
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from dymn_cli.audioset.vocabulary import HEAD_ID_PREFIX, Vocabulary
from dymn_cli.errors import UsageError
from dymn_cli.evaluate.results import ResultSet
from dymn_cli.evaluate.truth import PATH, STEM, YOUTUBE_ID, Truth
from dymn_cli.wording import counted

__all__ = ["Matching", "known_classes", "match_inputs", "no_match_error", "printable_list", "resolve_labels"]

_YOUTUBE_ID = 11


@dataclass
class Matching:
    """`pairs`: (truth key, result path), in truth order; what matched nothing, and what matched ambiguously."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    truth_only: list[str] = field(default_factory=list)
    results_only: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)


def _components(name: str) -> tuple[str, ...]:
    parts = PurePath(os.path.normpath(name.replace("\\", "/"))).parts
    return tuple(p for p in parts if p not in ("/", ".", ".."))


def _common_tail(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _real(name: str, base: Path | None) -> str:
    joined = name if os.path.isabs(name) or base is None else os.path.join(base, name)
    return os.path.realpath(joined)


def _path_candidates(key: str, base: Path | None, index: _PathIndex) -> list[str]:
    """The results that `key` names, best first: the same file, else the longest path-end match."""
    mine = _components(key)
    if not mine:
        return []
    scores: dict[str, tuple[bool, int]] = {}
    for path in index.by_real.get(_real(key, base), []):
        scores[path] = (True, _common_tail(mine, index.components[path]))
    for path in index.by_suffix.get(mine, []):  # (results whose path ends with all of the key's)
        scores.setdefault(path, (False, len(mine)))
    for n in range(1, len(mine)):  # (results whose whole path ends the key's)
        for path in index.by_whole.get(mine[-n:], []):
            scores.setdefault(path, (False, n))
    ranked = sorted(((score, path) for path, score in scores.items()), key=lambda item: item[0], reverse=True)
    if len(ranked) > 1 and ranked[0][0] == ranked[1][0]:
        return [path for score, path in ranked if score == ranked[0][0]]
    return [path for _, path in ranked[:1]]


class _PathIndex:
    """The result paths by resolved path, by every ending of their components, and by all of them:
    many inputs may share a file name (`*/001.wav`), and comparing each truth entry with each of those
    made matching quadratic (minutes for a few thousand inputs)."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.components: dict[str, tuple[str, ...]] = {}
        self.by_real: dict[str, list[str]] = defaultdict(list)
        self.by_suffix: dict[tuple[str, ...], list[str]] = defaultdict(list)
        self.by_whole: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for path in paths:
            parts = self.components[path] = _components(path)
            self.by_real[_real(path, None)].append(path)
            self.by_whole[parts].append(path)
            for n in range(1, len(parts) + 1):
                self.by_suffix[parts[-n:]].append(path)


def _stem_candidates(key: str, by_name: dict[str, list[str]], by_stem: dict[str, list[str]]) -> list[str]:
    return by_name.get(key) or by_stem.get(key, [])


def _youtube_ids(name: str, wanted: set[str]) -> list[str]:
    found = (name[i : i + _YOUTUBE_ID] for i in range(len(name) - _YOUTUBE_ID + 1))
    return list(dict.fromkeys(ytid for ytid in found if ytid in wanted))


def match_inputs(truth: Truth, results: ResultSet, *, base: Path | None = None) -> Matching:
    """Pair each truth entry with its result (see the module docstring); `base`: the folder that the
    truth's relative paths start from."""
    matching = Matching()
    by_name: dict[str, list[str]] = defaultdict(list)
    by_stem: dict[str, list[str]] = defaultdict(list)
    for path in results.inputs:
        name = _components(path)[-1] if _components(path) else path
        by_name[name].append(path)
        by_stem[os.path.splitext(name)[0]].append(path)
    by_youtube_id: dict[str, list[str]] = defaultdict(list)
    if truth.kind == YOUTUBE_ID:
        wanted = set(truth.files)
        for path in results.inputs:
            for ytid in _youtube_ids(_components(path)[-1] if _components(path) else path, wanted)[:1]:
                by_youtube_id[ytid].append(path)
    taken: set[str] = set()
    index = _PathIndex(results.inputs) if truth.kind == PATH else None
    for key in truth.files:
        if index is not None:
            candidates = _path_candidates(key, base, index)
        elif truth.kind == STEM:
            candidates = _stem_candidates(key, by_name, by_stem)
        else:
            candidates = by_youtube_id.get(key, [])
        if not candidates:
            matching.truth_only.append(key)
        elif len(candidates) > 1 or candidates[0] in taken:
            matching.ambiguous.append(key)
        else:
            matching.pairs.append((key, candidates[0]))
            taken.add(candidates[0])
    matching.results_only = [path for path in results.inputs if path not in taken]
    return matching


def no_match_error(truth_name: str, truth: Truth, results: ResultSet, matching: Matching) -> UsageError:
    """Why no truth entry found its result: none matched, or each matched several results equally."""
    if matching.ambiguous:
        return UsageError(
            f"{truth_name}: each truth entry that matches the results matches several of them equally "
            f"({len(matching.ambiguous)}, like {matching.ambiguous[0]!r}): name the files with more of their paths"
        )
    return UsageError(
        f"{truth_name}: the truth matches none of the {counted(len(results.inputs), 'input')} in the results "
        f"(truth names {truth.kind}s like {next(iter(truth.files))!r}, results hold paths like "
        f"{next(iter(results.inputs))!r})"
    )


def known_classes(results: ResultSet) -> dict[str, str]:
    """Every class the results can score: those they name, and all of AudioSet's when they hold any."""
    names = results.class_names()
    audioset = Vocabulary.audioset()
    if any(not mid.startswith(HEAD_ID_PREFIX) for mid in names):
        names = {c.id: c.name for c in audioset} | names
    return names


def resolve_labels(labels: Iterable[str], results: ResultSet, *, truth_name: str) -> dict[str, str]:
    """Each truth label's class id: a mid (or `head:NAME`), else a class name (any case); one
    `UsageError` naming the labels that are not classes of these results."""
    names = known_classes(results)
    if not names:  # (else every truth label would be blamed for results that hold no scores)
        sources = list(dict.fromkeys(str(r.source) for r in results.inputs.values()))
        raise UsageError(
            f"{printable_list(sources)}: no scores in these results (every input's list of labels is empty: a --threshold "
            "that no score reached?): tag with --top all to evaluate"
        )
    by_name = {name.lower(): mid for mid, name in names.items()}
    resolved: dict[str, str] = {}
    unknown: list[str] = []
    for label in labels:
        text = label.strip()
        mid = text if text in names else by_name.get(text.lower())
        if mid is None and HEAD_ID_PREFIX + text in names:
            mid = HEAD_ID_PREFIX + text
        if mid is None:
            unknown.append(label)
        else:
            resolved[label] = mid
    if unknown:
        first = unknown[0]
        close = difflib.get_close_matches(first.lower(), list(by_name), n=1, cutoff=0.6)  # ('dgo' -> 'dog')
        hint = f"; did you mean {names[by_name[close[0]]]!r}?" if close else ""
        more = f" (and {len(unknown) - 1} more: {', '.join(repr(u) for u in unknown[1:4])}{'...' if len(unknown) > 4 else ''})"
        raise UsageError(
            f"{truth_name}: the label {first!r}{more if len(unknown) > 1 else ''} is not a class of these results "
            f"(labels are AudioSet names or mids, or a head's classes){hint}"
        )
    return resolved


def printable_list(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
