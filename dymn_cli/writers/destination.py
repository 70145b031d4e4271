"""The one way a command claims a file it will write: checked before any work, written whole.

    target = claim_output("-o", args.output, inputs=input_files([data]), no_overwrite=args.no_overwrite)
    ...                                    # the work
    with written(target) as out:           # (dymn_cli.writers.output_file: atomic, a full disk keeps the old file)
        out.write(data)

`claim_output` applies every rule of `dymn_cli.writers.targets` (not a folder, a writable place, not named
twice) and two more: the target is none of the files the command reads (also through links and hard links,
and also a file inside an input folder), and `--no-overwrite` refuses an existing file. Each broken rule is
one `UsageError` naming the option, the file and the reason, raised before the command does any work.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from dymn_cli.errors import UsageError
from dymn_cli.writers.targets import Target, check_targets

__all__ = ["MAX_WALKED_FILES", "claim_output", "claim_outputs", "input_files"]

MAX_WALKED_FILES = 1_000_000  # files of input folders compared with the targets (beyond: not walked further)


def input_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The files a command reads from `paths`: each file as given, and every file under each folder."""
    found: list[str] = []
    for path in paths:
        text = os.fspath(path)
        if not os.path.isdir(text):
            found.append(text)
            continue
        for folder, _, names in os.walk(text):
            found += (os.path.join(folder, name) for name in names)
            if len(found) >= MAX_WALKED_FILES:
                return found
    return found


def claim_outputs(
    named: Sequence[tuple[str, Path | None]], *, inputs: Iterable[str | os.PathLike[str]] = (), no_overwrite: bool = False
) -> dict[str, Target]:
    """Every output of a command (`(option, path)`, None: not asked for) checked before any work; returns
    each option's `Target`, to be written with `dymn_cli.writers.output_file.written`."""
    try:
        targets = check_targets(named, inputs=[os.fspath(i) for i in inputs])
    except UsageError as error:
        raise UsageError(str(error).replace("it would be overwritten", "it would be overwritten: name another file")) from None
    if no_overwrite:
        for option, target in targets.items():
            if target.is_file and target.exists:
                raise UsageError(f"{target.path}: already exists (--no-overwrite): {option} names another file, or leave -n out")
    return targets


def claim_output(option: str, path: Path, *, inputs: Iterable[str | os.PathLike[str]] = (), no_overwrite: bool = False) -> Target:
    """One output (`option` `path`) checked before any work (see `claim_outputs`)."""
    return claim_outputs([(option, path)], inputs=inputs, no_overwrite=no_overwrite)[option]
