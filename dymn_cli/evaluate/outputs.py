"""What `dymn-tag evaluate` writes, through the output layer (`dymn_cli.writers.targets`): every
target checked before any work (writable, not one of the inputs, not named twice, `--no-overwrite`),
each file written whole or not at all."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dymn_cli.errors import UsageError
from dymn_cli.evaluate.evaluation import Evaluation
from dymn_cli.evaluate.matching import printable_list
from dymn_cli.evaluate.report import PLOT_FILES, classes_csv, plot_report, report_json, report_tables, thresholds_csv
from dymn_cli.wording import counted
from dymn_cli.writers.destination import claim_outputs, input_files
from dymn_cli.writers.output_file import written
from dymn_cli.writers.targets import check_folder, resolve_target

__all__ = ["EvaluationOutputs", "check_outputs", "saved_thresholds_lines", "write_outputs"]

JSON, TABLE, CSV = "json", "table", "csv"
FORMATS = (TABLE, JSON, CSV)
BY_SUFFIX = {".json": JSON, ".csv": CSV, ".txt": TABLE}
"""The report's format from -o's extension, as tagging takes its outputs' formats."""
PICTURE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")


@dataclass(frozen=True)
class EvaluationOutputs:
    """Where the report goes (`output` None: standard output) and in which format, and the optional files."""

    format: str | None = None  # None: from -o's extension, else a table on a terminal and JSON elsewhere
    output: Path | None = None
    thresholds: Path | None = None
    plot: Path | None = None
    no_overwrite: bool = False

    def report_format(self) -> str:
        """`--format`, else -o's extension; a file of another extension is a `UsageError`, as when tagging."""
        if self.format is not None:
            return self.format
        suffix = self.output.suffix.lower() if self.output is not None else ""
        if suffix in BY_SUFFIX:
            return BY_SUFFIX[suffix]
        target = resolve_target(self.output)
        if target.is_file:  # (a report.parquet or report.jsonl of indented JSON would be neither)
            raise UsageError(
                f"{self.output}: cannot tell the report's format from the extension {suffix or '(none)'}: "
                "name a .json, .csv or .txt file, or add --format (table, json or csv)"
            )
        terminal = target.descriptor is not None and os.isatty(target.descriptor)
        return TABLE if terminal else JSON


def check_outputs(outputs: EvaluationOutputs, *, inputs: Sequence[Path]) -> None:
    """Every output checked before any work: `UsageError` naming the first that cannot be written."""
    if outputs.format not in (None, *FORMATS):
        raise UsageError(f"--format: {outputs.format!r} is not one of {', '.join(map(repr, FORMATS))}")
    named: list[tuple[str, Path | None]] = [("-o", outputs.output), ("--save-thresholds", outputs.thresholds)]
    if outputs.plot is not None:
        if outputs.plot.suffix.lower() in PICTURE_SUFFIXES:
            raise UsageError(
                f"--plot {outputs.plot}: name a folder; evaluate draws two pictures in it ({' and '.join(PLOT_FILES)})"
            )
        check_folder(outputs.plot, option="--plot")
        if outputs.plot.is_dir():  # (a folder still to be made holds nothing to check)
            named += [("--plot", outputs.plot / name) for name in PLOT_FILES]
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'dymn-cli[plot]'") from None
    claim_outputs(named, inputs=input_files(inputs), no_overwrite=outputs.no_overwrite)
    outputs.report_format()  # (-o's extension checked too, before any work)


def write_outputs(evaluation: Evaluation, outputs: EvaluationOutputs) -> None:
    """The report, then the thresholds CSV and the pictures, each written whole. All are made before the
    first is written: a signal while the pictures are drawn (seconds) leaves none of them, not some."""
    report_format = outputs.report_format()
    if report_format == JSON:
        text = json.dumps(report_json(evaluation), ensure_ascii=False, indent=2) + "\n"
    elif report_format == CSV:
        text = classes_csv(evaluation)
    else:
        text = _tables_text(evaluation, terminal=outputs.output is None)
    files: list[tuple[Path, bytes, bool]] = []  # (path, content, whether its folder may be made)
    if outputs.thresholds is not None:
        files.append((outputs.thresholds, thresholds_csv(evaluation).encode("utf-8"), False))
    if outputs.plot is not None:
        files += [(outputs.plot / name, picture, True) for name, picture in plot_report(evaluation).items()]
    with written(outputs.output) as out:
        out.write(text.encode("utf-8"))
    for path, data, make_folders in files:
        with written(path, make_folders=make_folders) as out:
            out.write(data)


def _tables_text(evaluation: Evaluation, *, terminal: bool) -> str:
    from rich.console import Console

    width = shutil.get_terminal_size((100, 24)).columns if terminal else 100
    console = Console(width=width, record=True, file=open(os.devnull, "w"), color_system=None)  # noqa: SIM115
    try:
        for table in report_tables(evaluation):
            console.print(table)
        return console.export_text()
    finally:
        console.file.close()


def saved_thresholds_lines(evaluation: Evaluation, path: Path) -> tuple[str, str | None]:
    """What to say once `--save-thresholds` wrote `path`: how many classes it holds, and a warning
    naming those whose threshold would tag every input (None when there are none)."""
    saved = f"{path}: the best-F1 thresholds of {counted(evaluation.clip.n_classes_with_positives, 'class')}"
    if not evaluation.unseparated:
        return saved, None
    one = len(evaluation.unseparated) == 1
    names = [evaluation.names[evaluation.ids.index(mid)] for mid in evaluation.unseparated]
    return saved, (
        f"{counted(len(names), 'class')} {'reaches its' if one else 'reach their'} best F1 only by calling every "
        f"input positive: {'its' if one else 'their'} threshold in {path} tags every input with {'it' if one else 'them'} "
        f"({printable_list(names)})"
    )
