"""The record of the model and settings that wrote a CSV file: a hidden file beside it, bound to its content by SHA-256."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from dymn_cli.atomic import fitted_name, name_limit
from dymn_cli.writers.output_file import OutputFile

__all__ = ["SETTINGS_RECORD_SUFFIX", "read_settings_record", "settings_record_path", "write_settings_record"]

SETTINGS_RECORD_SUFFIX = ".dymn.json"


def settings_record_path(real: Path) -> Path:
    """Where the record of the model and settings that wrote a CSV file goes: a hidden file beside it."""
    limit = name_limit(real.parent)  # (shortened for a long name: its own temporary file must fit too)
    return (
        real.parent
        / f".{fitted_name(real.name, limit=limit, reserve=1 + len(SETTINGS_RECORD_SUFFIX) + 15)}{SETTINGS_RECORD_SUFFIX}"
    )


def write_settings_record(done: OutputFile, header: dict[str, object]) -> None:
    """Beside a complete FILE output about to be renamed into place, the record of the model and
    settings that wrote it, bound to its content by SHA-256: if the rename never happens, or the
    file is changed later, the record no longer matches and `--resume` refuses the file."""
    if done.target.real is None:
        return
    record = OutputFile(settings_record_path(done.target.real))
    record.write(json.dumps({**header, "sha256": done.sha256.hexdigest(), "size": done.size}) + "\n")
    record.commit()


def read_settings_record(target: Path) -> dict[str, object] | None:
    """The model and settings recorded for an output written with `write_settings_record`; None when
    there is no record, `ValueError` when the file is not the one the record describes."""
    real = Path(os.path.realpath(target))
    try:
        record = json.loads(settings_record_path(real).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    size = 0
    with open(real, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    if size != record.get("size") or digest.hexdigest() != record.get("sha256"):
        raise ValueError(f"it was changed after dymn-tag wrote it (it no longer matches {settings_record_path(real).name})")
    return {key: value for key, value in record.items() if key not in ("sha256", "size")}
