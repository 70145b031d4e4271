"""Classification heads: training on synthetic classes (held-out accuracy against logistic regression,
a hidden layer, the `train` command, multi-label CSV with segments) and the training data's rules.

The backbone is the random-weight mn04 test checkpoint, whose embeddings (unlike its chaotic logits) are
of ordinary size and tell strongly different sounds apart: tones, noise, click trains and chirps, made
here with varied pitch, rate and level (tests/transfer/synthetic_classes.py; the trained head is
tests/transfer/conftest.py's `trained`).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dymn_cli.errors import UsageError
from dymn_cli.models.head import load_head
from dymn_cli.tagger import Tagger
from dymn_cli.transfer import TrainingSettings, read_training_data, train_head
from dymn_cli.transfer.dataset import LabelledFile, Segment, window_labels
from dymn_cli.transfer.training import average_precision
from tests.transfer.synthetic_classes import CLASSES, HOP, WINDOW, run, synthetic, write


def logistic_regression(
    x: np.ndarray, y: np.ndarray, k: int, *, steps: int = 2000, rate: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A plain multinomial logistic regression by gradient descent (features scaled to unit variance)."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-12
    z = (x - mean) / std
    w, b = np.zeros((x.shape[1], k)), np.zeros(k)
    onehot = np.eye(k)[y]
    for _ in range(steps):
        logits = z @ w + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        w -= rate * z.T @ (p - onehot) / len(z)
        b -= rate * (p - onehot).mean(axis=0)
    return mean, std, w, b


def test_held_out_files_get_their_class_at_least_as_well_as_logistic_regression(dataset, trained, tagger, weights):
    root, held_out = dataset
    head_path, report = trained
    assert report.head.classes == CLASSES and report.head.activation == "softmax"
    assert report.n_windows == 4 * 6 * 2 and not report.failures
    # Held-out figures per class, from 3 folds over files.
    assert [c.name for c in report.classes] == list(CLASSES) and report.summary["folds"] == 3
    assert 0.0 <= report.summary["accuracy"] <= 1.0
    assert all(0 <= c.precision <= 1 and 0 <= c.recall <= 1 and 0 < c.average_precision <= 1 for c in report.classes)

    tests = [(kind, path) for kind in CLASSES for path in held_out[kind]]
    headed = Tagger(weights=weights, device="cpu", head=head_path)
    results = list(headed.tag_many([p for _, p in tests], window=WINDOW, hop=HOP))
    head_right = sum(r.top(1)[0][0] == kind for (kind, _), r in zip(tests, results))

    # The baseline sees the same embeddings: the training files' windows, then the held-out clips.
    train_files = [(k, root / "train" / kind / f"{v}.wav") for k, kind in enumerate(CLASSES) for v in range(6)]
    train = list(tagger.tag_many([p for _, p in train_files], window=WINDOW, hop=HOP))
    x = np.concatenate([r.embeddings for r in train]).astype(np.float64)
    y = np.concatenate([np.full(len(r.embeddings), k) for (k, _), r in zip(train_files, train)])
    mean, std, w, b = logistic_regression(x, y, len(CLASSES))
    clips = np.stack([r.embedding for r in results]).astype(np.float64)
    baseline = ((((clips - mean) / std) @ w + b).argmax(axis=1) == [CLASSES.index(k) for k, _ in tests]).sum()

    assert head_right >= baseline
    assert head_right >= 0.75 * len(tests)  # (strongly different sounds: the random network still tells them apart)


def test_a_hidden_layer_head_trains_and_applies(dataset, tagger):
    root, held_out = dataset
    report = train_head(
        read_training_data(root / "train"), tagger, TrainingSettings(window=WINDOW, hop=HOP, hidden=16, folds=0, workers=0)
    )
    assert report.head.hidden == 16 and len(report.head.layers) == 2 and report.classes == []
    tagger_with_head = Tagger(weights=tagger.weight_files[0], device="cpu", head=report.head)
    result = tagger_with_head.tag(held_out["noise"][0], window=WINDOW, hop=HOP)
    assert result.scores.shape == (4,) and abs(float(result.window_scores[0].sum()) - 1.0) < 1e-5


def test_train_command_reports_figures_and_warns_about_small_classes(tmp_path, dataset, weights):
    root, _ = dataset
    data = tmp_path / "data"
    for kind in ("tone", "noise"):
        shutil.copytree(root / "train" / kind, data / kind)
    write(data / "clicks" / "only.wav", synthetic("clicks", 1))
    (data / "empty").mkdir()
    (data / "broken" / "x.wav").parent.mkdir()
    (data / "broken" / "x.wav").write_bytes(b"RIFF not really")
    head = tmp_path / "h.safetensors"
    done = run(["train", str(data), "-o", str(head), "--weights", weights, "--window", "1", "--hop", "0.5", "--folds", "3"])
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr  # the broken file failed; the head is written from the rest
    figures = json.loads(done.stdout)
    assert {c["class"] for c in figures["classes"]} == {"tone", "noise", "clicks"}
    assert "accuracy" in figures["summary"]
    assert "x.wav" in stderr and "class 'clicks' has 1 file" in stderr and "'empty' left out" in stderr
    assert "class 'broken': no window of its files could be used" in stderr
    assert load_head(head).classes == ("clicks", "noise", "tone")
    nothing = run(["train", str(tmp_path / "nope"), "-o", str(head), "--weights", weights])
    assert nothing.returncode == 2 and "no such folder" in nothing.stderr.decode()


def test_multi_label_csv_with_segments_trains_a_sigmoid_head(tmp_path, tagger):
    rows = ["path,label,start,end"]
    for variant in range(4):
        write(
            tmp_path / f"mix{variant}.wav",
            np.concatenate([synthetic("tone", variant, seconds=2.0), synthetic("noise", variant, seconds=2.0)]),
        )
        rows += [f"mix{variant}.wav,tone,0,2", f"mix{variant}.wav,noise,2,", f"mix{variant}.wav,sound,,"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = read_training_data(tmp_path / "labels.csv")
    assert data.classes == ["noise", "sound", "tone"] and data.multi_label is False  # (one label per span)
    report = train_head(data, tagger, TrainingSettings(window=WINDOW, hop=HOP, folds=2, workers=0))
    assert report.head.activation == "sigmoid"  # windows carry two labels: "sound" and tone or noise
    assert set(report.summary) == {"mAP", "folds"}


def test_csv_problems_name_the_line(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("path,label,start,end\na.wav,x,3,1\n")
    with pytest.raises(UsageError, match=r"t.csv:2: the segment ends"):
        read_training_data(table)
    table.write_text("a.wav,x,zero\n")
    with pytest.raises(UsageError, match=r"t.csv:1: start must be a number"):
        read_training_data(table)
    table.write_text("a.wav,x\nb.wav,x\n")
    with pytest.raises(UsageError, match="at least two classes"):
        read_training_data(table)


def test_window_labels_follow_segments():
    file = LabelledFile(
        "a.wav", [Segment(frozenset({"a"})), Segment(frozenset({"b"}), 2.0, 2.4), Segment(frozenset({"c"}), 0.0, 1.2)]
    )
    starts = np.array([0.0, 1.0, 2.0, 3.0])
    labels = window_labels(file, starts, starts + 1.0, 3.5, ["a", "b", "c"])
    assert labels.tolist() == [[True, False, True], [True, False, False], [True, True, False], [True, False, False]]


def test_average_precision_of_a_known_ranking():
    assert average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx((1 + 2 / 3) / 2)
    assert np.isnan(average_precision(np.array([0, 0]), np.array([0.1, 0.2])))
