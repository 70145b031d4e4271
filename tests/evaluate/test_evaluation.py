"""`evaluate(results, truth)` on hand-written results against an AudioSet segment CSV: the paper's
protocol computes mAP and mean AUC as EfficientAT's `ex_audioset.py` does (scikit-learn's
`average_precision_score(targets, outputs, average=None).mean()`, and the same for `roc_auc_score`), and
results for only some of the clips, or with clips that failed to tag, are scored over the clips they
hold, with a warning that counts the rest."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.errors import UsageError
from dymn_cli.evaluate.evaluation import evaluate

CLASSES = {"/m/09x0r": "Speech", "/m/04rlf": "Music", "/m/0bt9lr": "Dog", "/m/01yrx": "Cat", "/m/015p6": "Bird"}
MIDS = list(CLASSES)


def clips(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """YouTube IDs, a truth matrix in which every class has positives and negatives, and scores with
    ties (sigmoid outputs written to 8 decimals, as dymn-tag writes them, often saturated)."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list(string.ascii_letters + string.digits + "-_"))
    ids = ["".join(rng.choice(alphabet, 11)) for _ in range(n)]
    truth = rng.random((n, len(MIDS))) < 0.3
    truth[np.arange(n), rng.integers(0, len(MIDS), n)] = True  # (an AudioSet row has a label at least)
    truth[0], truth[1] = True, [True, False, False, False, False]
    logits = rng.normal(size=truth.shape) * 4 + truth * 2
    scores = np.round(1 / (1 + np.exp(-np.round(logits))), 8)
    return ids, truth, scores


def write_truth(folder: Path, ids: list[str], truth: np.ndarray) -> Path:
    lines = ["# Segments csv created Sun Mar  5 10:54:31 2017", "# YTID, start_seconds, end_seconds, positive_labels"]
    for ytid, row in zip(ids, truth):
        lines.append(f'{ytid}, 30.000, 40.000, "{",".join(m for m, on in zip(MIDS, row) if on)}"')
    path = folder / "eval_segments.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_results(folder: Path, ids: list[str], scores: np.ndarray, failed: tuple[str, ...] = ()) -> Path:
    records = [
        {
            "path": f"clips/Y{ytid}_30.000_40.000.wav",
            "labels": [{"label": CLASSES[m], "mid": m, "score": s} for m, s in zip(MIDS, row)],
        }
        for ytid, row in zip(ids, scores.tolist())
    ]
    records += [{"path": f"clips/Y{ytid}_30.000_40.000.wav", "error": "cannot decode"} for ytid in failed]
    path = folder / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def efficientat(truth: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """`ex_audioset.py`'s figures, as written there."""
    return (
        average_precision_score(truth, scores, average=None).mean(),
        roc_auc_score(truth, scores, average=None).mean(),
    )


@pytest.mark.parametrize("seed", range(3))
def test_the_papers_protocol_gives_efficientats_map(tmp_path, seed):
    ids, truth, scores = clips(60, seed)
    result = evaluate([write_results(tmp_path, ids, scores)], [write_truth(tmp_path, ids, truth)])
    order = [MIDS.index(mid) for mid in result.ids]
    np.testing.assert_array_equal(result.truth, truth[:, order])
    expected_map, expected_auc = efficientat(truth, scores)
    assert result.clip.mAP == pytest.approx(expected_map, abs=1e-12)
    assert result.clip.auc == pytest.approx(expected_auc, abs=1e-12)
    assert result.warnings == []


def test_results_for_some_of_the_clips_are_scored_over_those_with_a_warning(tmp_path):
    ids, truth, scores = clips(40, 3)
    truth[:, MIDS.index("/m/015p6")] = False
    truth[30:, MIDS.index("/m/015p6")] = True  # (Bird's positives are all in clips without results)
    truth[~truth.any(axis=1), 0] = True
    result = evaluate([write_results(tmp_path, ids[:30], scores[:30])], [write_truth(tmp_path, ids, truth)])
    assert len(result.inputs) == 30
    assert any(w.startswith("no results for 10 files of the truth") for w in result.warnings)
    with_positives = truth[:30].any(axis=0)
    assert with_positives.tolist() == [True, True, True, True, False]
    # Bird has no positive among the clips scored: it is left out of the mean (EfficientAT's mean of
    # scikit-learn's AP would count it as 0, and its mean AUC would be NaN).
    expected_map, _ = efficientat(truth[:30, with_positives], scores[:30, with_positives])
    assert result.clip.mAP == pytest.approx(expected_map, abs=1e-12)
    assert result.clip.n_classes_with_positives == 4


def test_clips_that_failed_to_tag_are_counted_in_warnings(tmp_path):
    ids, truth, scores = clips(20, 4)
    results = write_results(tmp_path, ids[:17], scores[:17], failed=tuple(ids[17:]))
    result = evaluate([results], [write_truth(tmp_path, ids, truth)])
    assert len(result.inputs) == 17
    assert any(w.startswith("3 inputs failed when tagged") for w in result.warnings)
    assert any(w.startswith("no results for 3 files of the truth") for w in result.warnings)
    assert result.clip.mAP == pytest.approx(efficientat(truth[:17], scores[:17])[0], abs=1e-12)


def test_the_report_as_json_table_and_plots(tmp_path):
    from rich.console import Console

    from dymn_cli.evaluate.report import PLOT_FILES, plot_report, report_json, report_tables

    ids, truth, scores = clips(30, 5)
    music = MIDS.index("/m/04rlf")
    truth[:, music] = False
    truth[-1, music] = True  # (Music's one positive is a clip without results: a class without positives)
    truth[~truth.any(axis=1), 0] = True
    result = evaluate([write_results(tmp_path, ids[:-1], scores[:-1])], [write_truth(tmp_path, ids, truth)])
    truth, scores = truth[:-1], scores[:-1]
    report = json.loads(json.dumps(report_json(result)))  # (what -f json prints: plain JSON, nulls for NaN)
    for key in ("mAP", "auc", "d_prime", "lwlrap", "threshold", "at_threshold", "at_best_thresholds", "classes"):
        assert key in report
    for key in ("precision", "recall", "f1", "macro_f1"):
        assert key in report["at_threshold"] and key in report["at_best_thresholds"]
    rows = report["classes"]
    assert all(set(row) == {"label", "mid", "positives", "ap", "auc", "best_threshold", "best_f1"} for row in rows)
    assert rows[-1] == {"label": "Music", "mid": "/m/04rlf", "positives": 0, "ap": None, "auc": None} | {
        "best_threshold": None,
        "best_f1": None,
    }
    rows = rows[:-1]
    aps = [row["ap"] for row in rows]
    assert aps == sorted(aps, reverse=True) and all(row["positives"] for row in rows)
    assert report["mAP"] == pytest.approx(np.mean(aps), abs=1e-6)
    for row in rows:
        k = MIDS.index(row["mid"])
        assert row["ap"] == pytest.approx(average_precision_score(truth[:, k], scores[:, k]), abs=1e-6)
        assert row["label"] == CLASSES[row["mid"]] and row["positives"] == int(truth[:, k].sum())
    console = Console(width=200, record=True, file=open(tmp_path / "table.txt", "w"))  # noqa: SIM115
    for table in report_tables(result):
        console.print(table)
    text = console.export_text()
    shown = [line.split("│")[1].strip() for line in text.splitlines() if line.count("│") > 3]
    assert shown == [row["label"] for row in rows]  # (the classes with positives by falling AP, after the summary)
    assert text.index("mAP") < text.index("classes by AP")
    pictures = plot_report(result)
    assert set(pictures) == set(PLOT_FILES) and all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures.values())


def test_one_path_or_a_list_of_str_or_paths(tmp_path):
    ids, truth, scores = clips(12, seed=3)
    truth_file, results_file = write_truth(tmp_path, ids, truth), write_results(tmp_path, ids, scores)
    expected = evaluate([results_file], [truth_file]).clip.mAP
    for results, truth_ in (
        (str(results_file), str(truth_file)),
        (results_file, truth_file),
        ([str(results_file)], (truth_file,)),
    ):
        assert evaluate(results, truth_).clip.mAP == expected
    with pytest.raises(UsageError, match="no results given"):
        evaluate([], truth_file)


def test_per_class_thresholds_give_the_figures_tagging_with_them_would(tmp_path):
    """--thresholds FILE: `score >= its class's threshold` is a positive; a class the file does not list
    keeps --threshold."""
    ids, truth, scores = clips(20, seed=4)
    truth_file, results_file = write_truth(tmp_path, ids, truth), write_results(tmp_path, ids, scores)
    levels = {"/m/09x0r": 0.9, "/m/04rlf": 0.2, "/m/0bt9lr": 0.6, "/m/01yrx": 0.05}  # (Bird not listed)
    thresholds = tmp_path / "thresholds.csv"
    thresholds.write_text("label,mid,threshold\n" + "".join(f"{CLASSES[m]},{m},{t}\n" for m, t in levels.items()))
    evaluation = evaluate(results_file, truth_file, threshold=0.3, thresholds=thresholds)
    order = [MIDS.index(mid) for mid in evaluation.ids]
    cut = np.array([levels.get(mid, 0.3) for mid in evaluation.ids])
    predicted, expected_truth = scores[:, order] >= cut, truth[:, order]
    true_positives = int((predicted & expected_truth).sum())
    figures = evaluation.at_thresholds
    assert (figures.true_positives, figures.false_positives) == (true_positives, int((predicted & ~expected_truth).sum()))
    assert figures.precision == pytest.approx(true_positives / predicted.sum())
    assert evaluation.thresholds_file == str(thresholds)
    assert evaluate(results_file, truth_file).at_thresholds is None


def test_results_holding_none_of_the_truths_scores_are_an_error(tmp_path):
    """A --top 1 run, say, whose one class per input is never one the truth names: nothing to rank."""
    ids, truth, _ = clips(6, seed=5)
    other = next(c for c in Vocabulary.audioset() if c.id not in CLASSES)
    records = [
        {"path": f"clips/Y{ytid}_30.000_40.000.wav", "labels": [{"label": other.name, "mid": other.id, "score": 0.9}]}
        for ytid in ids
    ]
    results_file = tmp_path / "r.jsonl"
    results_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    truth_file = write_truth(tmp_path, ids, truth)
    with pytest.raises(UsageError, match="none of the truth's classes has a score in the results"):
        evaluate(results_file, truth_file)


def test_a_class_whose_best_f1_calls_every_input_positive_is_named(tmp_path):
    ids, truth, scores = clips(10, seed=6)
    scores[:, MIDS.index("/m/015p6")] = np.where(truth[:, MIDS.index("/m/015p6")], 0.1, 0.9)  # (Bird: upside down)
    evaluation = evaluate(write_results(tmp_path, ids, scores), write_truth(tmp_path, ids, truth))
    assert "/m/015p6" in evaluation.unseparated
    from rich.console import Console

    from dymn_cli.evaluate.report import report_tables

    console = Console(width=120, record=True, color_system=None, file=open(os.devnull, "w"))  # noqa: SIM115
    for table in report_tables(evaluation):
        console.print(table)
    text = console.export_text()
    bird = next(line for line in text.splitlines() if "Bird" in line)
    assert "*" in bird and "the scores do not separate this class" in " ".join(text.split())  # (the caption wraps)
    console.file.close()
