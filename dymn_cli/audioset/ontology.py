"""The AudioSet ontology: label selection by name, mid or subtree, and class listings.

`select_classes(labels="Animal", exclude="Insect")` turns what a user typed into the output class
indices to keep. A term is an AudioSet mid or the name of any ontology node, matched without regard
to case or to the spaces around commas; it selects the classes among that node and its descendants
(abstract and blacklisted nodes, and the few others without a model output, select only the classes
below them). The ontology is loaded from the copy shipped in `dymn_cli/audioset/data/ontology.json`
(Google Inc., CC BY-SA 4.0, see `dymn_cli/audioset/data/NOTICE.md`) on first use and kept.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from dymn_cli.audioset.labels import audioset_classes
from dymn_cli.audioset.vocabulary import AUDIOSET, LabelClass, Vocabulary
from dymn_cli.errors import UsageError
from dymn_cli.text_lists import read_lines

__all__ = ["ClassInfo", "Ontology", "OntologyNode", "find_classes", "ontology", "parse_label_terms", "select_classes"]


@dataclass(frozen=True)
class OntologyNode:
    mid: str
    name: str
    children: tuple[str, ...]
    restrictions: tuple[str, ...]


@dataclass(frozen=True)
class ClassInfo:
    """An output class with where it sits in the ontology."""

    index: int
    mid: str
    name: str
    path: tuple[str, ...]  # names of its ancestors, the top-level node first (empty for a top-level class)

    @property
    def parent_path(self) -> str:
        return " > ".join(self.path)


def _key(text: str) -> str:
    """Names compare without case, with single spaces and no spaces around commas."""
    return re.sub(r"\s*,\s*", ",", " ".join(text.split()).lower())


class Ontology:
    """Nodes by mid, names to mids, parents, and the output class index of every mid that has one."""

    def __init__(self, nodes: Iterable[dict]) -> None:
        self.nodes: dict[str, OntologyNode] = {}
        for raw in nodes:
            node = OntologyNode(raw["id"], raw["name"], tuple(raw.get("child_ids", ())), tuple(raw.get("restrictions", ())))
            self.nodes[node.mid] = node
        self.parents: dict[str, list[str]] = {mid: [] for mid in self.nodes}
        for node in self.nodes.values():
            for child in node.children:
                if child in self.parents:
                    self.parents[child].append(node.mid)
        self.class_index = {c.mid: c.index for c in audioset_classes()}
        self._by_key: dict[str, list[str]] = {}
        for node in self.nodes.values():
            self._by_key.setdefault(_key(node.name), []).append(node.mid)
        for c in audioset_classes():  # every class is a node, but do not rely on it
            if c.mid not in self.nodes:
                self._by_key.setdefault(_key(c.name), []).append(c.mid)
        self._by_mid = {mid.lower(): mid for mid in [*self.nodes, *self.class_index]}

    def lookup(self, term: str) -> list[str]:
        """Mids of the nodes a term names (a mid, or a node's name); empty if none."""
        text = term.strip()
        if text.lower() in self._by_mid:
            return [self._by_mid[text.lower()]]
        return list(self._by_key.get(_key(text), []))

    def subtree(self, mid: str) -> list[str]:
        """The node and all its descendants, each once, in depth-first order."""
        seen: dict[str, None] = {}
        stack = [mid]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen[current] = None
            node = self.nodes.get(current)
            if node is not None:
                stack.extend(reversed(node.children))
        return list(seen)

    def classes_under(self, mid: str) -> list[int]:
        """Output class indices among the node and its descendants, sorted."""
        return sorted({self.class_index[m] for m in self.subtree(mid) if m in self.class_index})

    def path(self, mid: str) -> tuple[str, ...]:
        """Names of the node's ancestors along its first-listed parents, the root first."""
        names: list[str] = []
        seen = {mid}
        current = mid
        while self.parents.get(current):
            current = self.parents[current][0]
            if current in seen:  # never loop, whatever the file says
                break
            seen.add(current)
            names.append(self.nodes[current].name)
        return tuple(reversed(names))

    def is_known(self, term: str) -> bool:
        return bool(self.lookup(term))

    def suggestions(self, term: str, n: int = 5) -> list[str]:
        """Closest node names to a term that matched nothing."""
        names = {_key(node.name): node.name for node in self.nodes.values()}
        close = difflib.get_close_matches(_key(term), list(names), n=n, cutoff=0.6)
        if not close:
            close = [k for k in names if _key(term) in k][:n]
        return [names[k] for k in close]

    def resolve(self, term: str) -> list[int]:
        """Output class indices a term selects; a `UsageError` with suggestions if it names nothing."""
        mids = self.lookup(term)
        if not mids:
            hint = self.suggestions(term)
            did_you_mean = f": did you mean {_or_list(hint)}?" if hint else " (see `dymn-tag labels`)"
            raise UsageError(f"unknown AudioSet label {term.strip()!r}{did_you_mean}")
        indices = sorted({i for mid in mids for i in self.classes_under(mid)})
        if not indices:
            raise UsageError(f"{term.strip()!r} is in the AudioSet ontology but no model output is at or below it")
        return indices

    def info(self, index: int) -> ClassInfo:
        c = audioset_classes()[index]
        return ClassInfo(index=c.index, mid=c.mid, name=c.name, path=self.path(c.mid))


def _or_list(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


@lru_cache(maxsize=1)
def ontology() -> Ontology:
    """The shipped AudioSet ontology, loaded on first use."""
    text = resources.files("dymn_cli.audioset").joinpath("data/ontology.json").read_text(encoding="utf-8")
    return Ontology(json.loads(text))


MAX_LABEL_LINE = 4096  # bytes of one line of a `--labels @FILE` list (a label name is at most a few dozen)
MAX_LABEL_LIST = 1 << 20  # bytes of the whole list
LABEL_LIST_WAIT = 10.0  # seconds a list from a FIFO or pipe may take to come


def parse_label_terms(spec: str | Sequence[str], *, extra_names: Iterable[str] = ()) -> list[str]:
    """Terms from a comma-separated list, or from `@file` (one term a line; blank lines and `#` comments
    are skipped). Names that contain commas ("Male speech, man speaking") are kept whole: adjacent
    pieces are joined whenever together they name a node (or one of `extra_names`, a head's classes)."""
    extra = {_key(name) for name in extra_names}
    if not isinstance(spec, str):
        return [term for item in spec for term in parse_label_terms(item, extra_names=extra)]
    spec = spec.strip()
    if spec.startswith("@"):
        lines = [
            line
            for _, line in read_lines(
                spec[1:], what="label list", max_line=MAX_LABEL_LINE, max_total=MAX_LABEL_LIST, wait=LABEL_LIST_WAIT
            )
        ]
        return [
            term
            for line in lines
            if line.strip() and not line.lstrip().startswith("#")
            for term in parse_label_terms(line, extra_names=extra)
        ]
    pieces = [p.strip() for p in spec.split(",")]
    known = ontology()
    terms: list[str] = []
    i = 0
    while i < len(pieces):
        # The longest run of pieces, from i, that names a node; a single piece otherwise.
        for j in range(len(pieces), i + 1, -1):
            joined = ", ".join(pieces[i:j])
            if _key(joined) in extra or known.is_known(joined):
                terms.append(joined)
                i = j
                break
        else:
            if pieces[i]:
                terms.append(pieces[i])
            i += 1
    return terms


def select_classes(
    labels: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    *,
    vocabulary: Vocabulary | None = None,
) -> list[int] | None:
    """Class indices to report: those `labels` select (all if None) minus those `exclude` selects.

    Each of `labels` and `exclude` is a comma-separated string, `@file`, or a list of terms. Indices
    are into `vocabulary` (default: the AudioSet classes). A term names a head's class (by name or
    id, `head:<name>`), or an AudioSet class or ontology node (by name or mid), which selects AudioSet
    classes only, and only when the vocabulary has them. Returns None when neither is given (every
    class). Raises `UsageError` for an unknown term, with the closest names, and when nothing is left.
    """
    if labels is None and exclude is None:
        return None
    vocabulary = vocabulary if vocabulary is not None else Vocabulary.audioset()
    own = [c for c in vocabulary if c.source != AUDIOSET]
    own_names = [c.name for c in own]
    wanted_terms = parse_label_terms(labels, extra_names=own_names) if labels is not None else None
    if wanted_terms is not None and not wanted_terms:
        raise UsageError("--labels is empty")
    wanted = (
        {i for term in wanted_terms for i in _resolve(term, vocabulary, own)}
        if wanted_terms is not None
        else set(range(len(vocabulary)))
    )
    dropped = (
        {i for term in parse_label_terms(exclude, extra_names=own_names) for i in _resolve(term, vocabulary, own)}
        if exclude is not None
        else set()
    )
    kept = sorted(wanted - dropped)
    if not kept:
        raise UsageError(f"no {'class' if own else 'AudioSet class'} is left after --labels and --exclude")
    return kept


def _resolve(term: str, vocabulary: Vocabulary, own: Sequence[LabelClass]) -> list[int]:
    """Vocabulary indices a term selects: a head's class first, else AudioSet classes via the ontology."""
    key = _key(term)
    hits = [c.index for c in own if _key(c.name) == key or c.id.lower() == term.strip().lower()]
    known = ontology()
    if vocabulary.has_audioset and (not hits or known.is_known(term)):
        # (AudioSet classes come first: their vocabulary index is their model output index)
        return hits + known.resolve(term)
    if hits:
        return hits
    if known.is_known(term):
        raise UsageError(
            f"{term.strip()!r} is an AudioSet label, and this run reports only the head's classes "
            f"({_or_list([c.name for c in own][:5])}{'...' if len(own) > 5 else ''}): add --with-audioset"
        )
    names = {_key(c.name): c.name for c in own}
    close = [names[k] for k in difflib.get_close_matches(key, list(names), n=5, cutoff=0.6)]
    raise UsageError(
        f"unknown class {term.strip()!r}"
        + (f": did you mean {_or_list(close)}?" if close else f": the head's classes are {_or_list([c.name for c in own][:10])}")
    )


def find_classes(query: str | None = None) -> list[ClassInfo]:
    """Classes for `dymn-tag labels`: those whose name or mid contains `query` (case-insensitive), and
    every class in the subtree of a node whose name (or mid) is `query`; all classes without a query.
    Raises `UsageError`, with the closest names, when nothing matches."""
    known = ontology()
    classes = audioset_classes()
    if query is None or not query.strip():
        return [known.info(c.index) for c in classes]
    needle = " ".join(query.split()).lower()
    hits = {c.index for c in classes if needle in c.name.lower() or needle in c.mid.lower()}
    for mid in known.lookup(query):
        hits.update(known.classes_under(mid))
    if not hits:
        hint = known.suggestions(query)
        raise UsageError(f"no AudioSet class matches {query.strip()!r}" + (f": did you mean {_or_list(hint)}?" if hint else ""))
    return [known.info(i) for i in sorted(hits)]
