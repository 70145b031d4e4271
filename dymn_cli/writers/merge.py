"""`dymn-tag merge OUTPUTS... -o FILE`: outputs of one format (files, or folders of part files)
joined into one file, in the order a folder walk gives (per folder: files by name, then subfolders by
name), which is the order `dymn-tag FOLDER` writes; so merging the shards of a folder gives the
single-machine output of that folder, byte for byte for CSV, JSON and JSONL. Each format reads and
writes its own files (`Writer.read_existing`, `read_layout`, `write_merged`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dymn_cli.audio.paths import walk_order_key
from dymn_cli.errors import UsageError
from dymn_cli.wording import counted
from dymn_cli.writers.destination import claim_output
from dymn_cli.writers.parts import part_files
from dymn_cli.writers.registry import MERGEABLE_FORMATS, writer_class
from dymn_cli.writers.targets import Target

log = logging.getLogger("dymn_cli")


@dataclass
class MergeSummary:
    files: int = 0
    inputs: int = 0
    duplicates: list[str] = field(default_factory=list)

    def line(self, target: Path) -> str:
        again = f", {len(self.duplicates)} recorded more than once (the last result kept)" if self.duplicates else ""
        return f"merged {counted(self.inputs, 'input')} from {counted(self.files, 'file')} into {target}{again}"


def merge_outputs(sources: Sequence[str | Path], target: Path, *, no_overwrite: bool = False) -> MergeSummary:
    """Join outputs of one format (files, or folders of part files) into `target`, in folder-walk
    order. An input recorded in several outputs keeps its last record, except that an error record
    never replaces a result (a re-run shard may have fixed what failed before, not the other way).
    A `.npz` target joins embeddings archives (`--embeddings`). The target is claimed before any work
    (`dymn_cli.writers.destination`): none of the outputs to merge, `no_overwrite` honoured."""
    if target.suffix.lower() == ".npz":
        from dymn_cli.writers.embeddings import merge_embeddings

        archives = _merge_sources(sources, extension=".npz")
        claimed = _claim(target, archives, no_overwrite)
        inputs, duplicates = merge_embeddings(archives, claimed, order_key=walk_order_key)
        return MergeSummary(files=len(archives), inputs=inputs, duplicates=duplicates)
    writer_type = writer_class(None, target, stdout_is_terminal=False)
    if writer_type.name not in MERGEABLE_FORMATS:
        raise UsageError(f"merge writes {', '.join(MERGEABLE_FORMATS)}: not {target.suffix or target.name}")
    files = _merge_sources(sources, extension=writer_type.extension)
    resolved = _claim(target, files, no_overwrite)
    summary = MergeSummary(files=len(files))
    merged: dict[str, Any] = {}
    layout: Any = None
    first = files[0]  # (the file whose layout the others must have)
    for path in files:
        try:
            this_layout = writer_type.read_layout(path)
            records = writer_type.read_existing(path)
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as error:  # (JSON nested too deep)
            raise UsageError(f"{path}: cannot read it as {writer_type.name}: {error}") from None
        if not records and this_layout[1] is None:
            continue  # (a JSON Lines file without records says no model: it adds nothing, and mixes nothing)
        if layout is None:
            layout, first = this_layout, path
        elif this_layout != layout:
            raise UsageError(f"{_difference(path, this_layout, first, layout)}: they cannot be merged")
        for key, payload in records.items():
            if key in merged:
                summary.duplicates.append(key)
                if _is_error(payload) and not _is_error(merged[key]):
                    continue
            merged[key] = payload
    if layout is None:  # (only files without records)
        layout = writer_type.read_layout(files[0])
    summary.inputs = len(merged)
    ordered = sorted(merged, key=walk_order_key)
    writer_type.write_merged(resolved, layout, [(key, merged[key]) for key in ordered])
    return summary


def _claim(target: Path, files: Sequence[Path], no_overwrite: bool) -> Target:
    try:  # (the rules of every output: see dymn_cli.writers.destination)
        return claim_output("-o", target, inputs=files, no_overwrite=no_overwrite)
    except UsageError as error:
        raise UsageError(str(error).replace("is one of the inputs", "is one of the outputs to merge")) from None


def _merge_sources(sources: Iterable[str | Path], *, extension: str) -> list[Path]:
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found = part_files(source, extension=extension)
            if not found:
                log.warning("%s: no %s files in this folder", source, extension)
            files += found
        elif source.is_file():
            if source.suffix.lower() != extension:
                raise UsageError(f"{source}: merge joins outputs of one format: expected {extension} files like the merged file")
            files.append(source)
        else:
            raise UsageError(f"{source}: no such file or folder")
    if not files:
        raise UsageError("nothing to merge")
    return files


def _difference(path: Path, layout: Any, first: Path, expected: Any) -> str:
    """How two outputs' layouts (columns, header) differ, in words: the models when they differ."""
    model, expected_model = (layout[1] or {}).get("model"), (expected[1] or {}).get("model")
    if model != expected_model:
        return f"{path} was written by the model {model or '(not recorded)'}, {first} by {expected_model or '(not recorded)'}"
    return f"{path} was written with other settings or columns than {first}"


def _is_error(payload: Any) -> bool:
    return isinstance(payload, dict) and "error" in payload
