"""`dymn-tag models`: the published models, and which are in the cache."""

from __future__ import annotations

from pathlib import Path


def models_command() -> None:
    """List the published models: family, width, parameters, mAP, and whether each is cached."""
    from rich.console import Console
    from rich.table import Table

    from dymn_cli.models.weights import REGISTRY, cache_dir, cached_path

    table = Table(title=f"Published AudioSet models (cache: {cache_dir()})", title_justify="left")
    for column in ("name", "family", "width", "params", "mAP", "cached"):
        table.add_column(column, justify="right" if column in ("width", "params", "mAP") else "left")
    for record in sorted(REGISTRY.values(), key=lambda r: (r.family != "dymn", r.width, r.name)):
        table.add_row(
            record.name,
            "DyMN" if record.family == "dymn" else "MobileNetV3",
            f"{record.width:.1f}",
            f"{record.num_params / 1e6:.1f} M",
            f"{record.map:.3f}" if record.map is not None else "-",
            _cached_size(cached_path(record)),
        )
    Console().print(table)


def _cached_size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB" if path.exists() else "no"
