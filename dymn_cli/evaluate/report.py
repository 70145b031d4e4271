"""An `Evaluation` as users read it: a JSON object, a table on a terminal, a thresholds CSV, plots.

The JSON object: `mAP`, `auc`, `d_prime`, `lwlrap`, `threshold`, `at_threshold` and
`at_best_thresholds` (precision, recall, F1 micro-averaged, macro F1, counts), `thresholds_file` and
`at_thresholds` (the same at a `--thresholds` file's per-class thresholds; null without one), `n_inputs`,
`n_classes` (with positives / in the truth), `missing_scores`, `segment_based` and `event_based`
(null without times), `warnings`, and `classes`: `[{label, mid, positives, ap, auc, best_threshold,
best_f1}]`, sorted by AP. Figures that do not exist (the AP of a class without positives) are null.

The thresholds CSV (`label,mid,threshold`, one row per class with positives: its best-F1 threshold)
is the shared contract that `dymn-tag --thresholds FILE` reads.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from dymn_cli.evaluate.evaluation import Evaluation
from dymn_cli.wording import counted

__all__ = ["PLOT_FILES", "class_rows", "classes_csv", "report_json", "report_tables", "thresholds_csv", "plot_report"]


def _value(number: float | np.floating) -> float | None:
    number = float(number)
    return None if math.isnan(number) else round(number, 6) if math.isfinite(number) else None


def class_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    """One row per class of the truth, the classes with positives first by falling AP, then the others."""
    clip = evaluation.clip
    rows = [
        {
            "label": name,
            "mid": mid,
            "positives": int(clip.positives[k]),
            "ap": _value(clip.ap[k]),
            "auc": _value(clip.class_auc[k]),
            "best_threshold": None if math.isnan(clip.best_thresholds[k]) else float(clip.best_thresholds[k]),  # (exact: a score)
            "best_f1": _value(clip.best_f1[k]),
        }
        for k, (mid, name) in enumerate(zip(evaluation.ids, evaluation.names))
    ]
    return sorted(rows, key=lambda r: (r["ap"] is None, -(r["ap"] or 0.0), r["label"]))


def report_json(evaluation: Evaluation) -> dict[str, Any]:
    clip = evaluation.clip

    def figures(f: Any) -> dict[str, Any]:
        return {k: _value(v) if isinstance(v, float) else v for k, v in f.as_dict().items()}

    return {
        "mAP": _value(clip.mAP),
        "auc": _value(clip.auc),
        "d_prime": _value(clip.d_prime),
        "lwlrap": _value(clip.lwlrap),
        "threshold": clip.threshold,
        "at_threshold": figures(clip.at_threshold),
        "at_best_thresholds": figures(clip.at_best_thresholds),
        "thresholds_file": evaluation.thresholds_file,
        "at_thresholds": figures(evaluation.at_thresholds) if evaluation.at_thresholds else None,
        "n_inputs": len(evaluation.inputs),
        "n_classes": len(evaluation.ids),
        "n_classes_with_positives": clip.n_classes_with_positives,
        "missing_scores": evaluation.missing_scores,
        "segment_based": figures(evaluation.segments) if evaluation.segments else None,
        "event_based": figures(evaluation.events) if evaluation.events else None,
        "warnings": evaluation.warnings,
        "classes": class_rows(evaluation),
    }


def _shown(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report_tables(evaluation: Evaluation) -> list[Any]:
    """Rich tables: the summary, then the classes with positives by falling AP."""
    from rich.table import Table

    data = report_json(evaluation)
    summary = Table(
        title=f"{counted(data['n_inputs'], 'input')}, {counted(data['n_classes_with_positives'], 'class')} with positives",
        show_header=False,
    )
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    for name, key in (("mAP", "mAP"), ("mean ROC AUC", "auc"), ("d'", "d_prime"), ("lwlrap", "lwlrap")):
        summary.add_row(name, _shown(data[key]))
    for title, key in (
        (f"at threshold {data['threshold']:g}", "at_threshold"),
        ("at each class's best-F1 threshold", "at_best_thresholds"),
        (f"at the thresholds of {data['thresholds_file']}", "at_thresholds"),
    ):
        f = data[key]
        if f is None:
            continue
        summary.add_row(f"P / R / F1 {title}", f"{_shown(f['precision'])} / {_shown(f['recall'])} / {_shown(f['f1'])}")
    if data["segment_based"]:
        s = data["segment_based"]
        summary.add_row(f"segment-based F1 / ER ({s['resolution']:g} s)", f"{_shown(s['f1'])} / {_shown(s['error_rate'])}")
    if data["event_based"]:
        e = data["event_based"]
        summary.add_row(f"event-based F1 (onset collar {e['collar']:g} s)", _shown(e["f1"]))
    classes = Table(title="classes by AP")
    for column, justify in (("label", "left"), ("positives", "right"), ("AP", "right"), ("AUC", "right")):
        classes.add_column(column, justify=justify)
    classes.add_column("best threshold", justify="right")
    classes.add_column("best F1", justify="right")
    every_input = set(evaluation.unseparated)
    for row in data["classes"]:
        if row["positives"]:
            mark = " *" if row["mid"] in every_input else ""
            classes.add_row(
                row["label"],
                str(row["positives"]),
                _shown(row["ap"]),
                _shown(row["auc"]),
                _shown(row["best_threshold"], 4) + mark,
                _shown(row["best_f1"]),
            )
    if every_input:
        classes.caption = "* the best F1 calls every input positive: the scores do not separate this class"
    return [summary, classes]


CLASS_COLUMNS = ("label", "mid", "positives", "ap", "auc", "best_threshold", "best_f1")


def classes_csv(evaluation: Evaluation) -> str:
    """The JSON report's `classes` as CSV rows (`-f csv`), an empty cell where a figure does not exist."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CLASS_COLUMNS)
    for row in class_rows(evaluation):
        writer.writerow(["" if row[column] is None else row[column] for column in CLASS_COLUMNS])
    return out.getvalue()


def thresholds_csv(evaluation: Evaluation) -> str:
    """`label,mid,threshold`: each class with positives and its best-F1 threshold."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "mid", "threshold"])
    for row in class_rows(evaluation):
        if row["best_threshold"] is not None:
            writer.writerow([row["label"], row["mid"], repr(float(row["best_threshold"]))])
    return buffer.getvalue()


def plot_report(evaluation: Evaluation) -> dict[str, bytes]:
    """PNG pictures by file name: `pr_curves.png` (the precision-recall curves of the classes with
    positives, at most 20, the best AP first) and `class_ap.png` (every class's AP, a bar each)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [r for r in class_rows(evaluation) if r["positives"]]
    column = {mid: k for k, mid in enumerate(evaluation.ids)}
    pictures: dict[str, bytes] = {}
    figure, axes = plt.subplots(figsize=(8, 6))
    for row in rows[:20]:
        recall, precision = _pr_curve(evaluation.truth[:, column[row["mid"]]], evaluation.scores[:, column[row["mid"]]])
        axes.step(recall, precision, where="pre", label=f"{row['label']} (AP {row['ap']:.3f})")
    axes.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=f"Precision-recall (mAP {_shown(_value(evaluation.clip.mAP))})",
    )
    axes.legend(fontsize="small", loc="lower left")
    pictures["pr_curves.png"] = _png(figure, plt)
    height = max(3.0, 0.22 * len(rows) + 1)
    figure, axes = plt.subplots(figsize=(8, min(height, 120)))
    axes.barh([r["label"] for r in rows][::-1], [r["ap"] for r in rows][::-1])
    axes.set(xlabel="average precision", xlim=(0, 1), title="AP per class")
    axes.tick_params(axis="y", labelsize="small")
    pictures["class_ap.png"] = _png(figure, plt)
    return pictures


PLOT_FILES = ("pr_curves.png", "class_ap.png")


def _pr_curve(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(scores, kind="mergesort")[::-1]
    ranked, hits = scores[order], truth[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]
    true_positives = np.cumsum(hits)[ends]
    return np.r_[0.0, true_positives / max(1, truth.sum())], np.r_[1.0, true_positives / (ends + 1)]


def _png(figure: Any, plt: Any) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
