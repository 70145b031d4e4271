"""Classification heads: training on synthetic classes, the head file, `--head` in every output format.

The backbone is the random-weight mn04 test checkpoint, whose embeddings (unlike its chaotic logits) are
of ordinary size and tell strongly different sounds apart: tones, noise, click trains and chirps, made
here with varied pitch, rate and level.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.errors import HeadError, UsageError
from dymn_cli.models.head import Backbone, ClassifierHead, load_head, save_head
from dymn_cli.tagger import Tagger
from dymn_cli.transfer import TrainingSettings, read_training_data, train_head
from dymn_cli.transfer.dataset import LabelledFile, Segment, window_labels
from dymn_cli.transfer.training import average_precision
from tests.support import DYMN_TAG

RATE = 32_000
CLASSES = ("chirp", "clicks", "noise", "tone")
WINDOW, HOP = 1.0, 0.5


def run(args: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DYMN_TAG, *args], capture_output=True, cwd=cwd, timeout=300)


def synthetic(kind: str, variant: int, *, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """One example of a class; `variant` moves its pitch, rate or colour, `seed` its level and noise."""
    rng = np.random.default_rng(1000 * variant + seed)
    t = np.arange(int(seconds * RATE)) / RATE
    if kind == "tone":
        x = np.sin(2 * np.pi * (250 + 90 * variant) * t)
    elif kind == "noise":
        x = rng.standard_normal(len(t)) * 0.6
    elif kind == "clicks":
        x = np.zeros(len(t))
        x[:: int(RATE / (5 + 2 * variant))] = 1.0
    elif kind == "chirp":
        f0, f1 = 200 + 40 * variant, 3000 + 300 * variant
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    else:
        raise ValueError(kind)
    return (x * (0.3 + 0.5 * rng.random())).astype(np.float32)


def write(path: Path, signal: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, signal, RATE)
    return path


@pytest.fixture(scope="module")
def weights(golden_dir) -> str:
    return str(golden_dir / "mn04_seed0.pt")


@pytest.fixture(scope="module")
def tagger(weights) -> Tagger:
    return Tagger(weights=weights, device="cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict[str, list[Path]]]:
    """`train/<class>/*.wav` (6 files a class) and held-out files of other variants (3 a class)."""
    root = tmp_path_factory.mktemp("heads")
    held_out: dict[str, list[Path]] = {}
    for kind in CLASSES:
        for variant in range(6):
            write(root / "train" / kind / f"{variant}.wav", synthetic(kind, variant))
        held_out[kind] = [write(root / "test" / f"{kind}{v}.wav", synthetic(kind, v, seed=7)) for v in range(6, 9)]
    return root, held_out


@pytest.fixture(scope="module")
def trained(dataset, tagger) -> tuple[Path, object]:
    root, _ = dataset
    report = train_head(read_training_data(root / "train"), tagger, TrainingSettings(window=WINDOW, hop=HOP, folds=3, workers=0))
    path = save_head(report.head, root / "sounds.safetensors")
    return path, report


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


def test_head_file_round_trip_records_what_the_head_needs(trained, tagger):
    path, report = trained
    head = load_head(path)
    assert head.classes == CLASSES
    assert head.backbone == tagger.backbone and head.backbone.name == "mn04_seed0" and len(head.backbone.sha256[0]) == 64
    assert (head.window, head.hop, head.sample_rate) == (WINDOW, HOP, 32_000)
    assert head.mean.shape == head.scale.shape == (tagger.embedding_dim,)
    x = np.random.default_rng(0).standard_normal((5, tagger.embedding_dim))
    np.testing.assert_allclose(head.probabilities(x), report.head.probabilities(x), rtol=1e-6)
    assert head.training["held_out"]["summary"]["folds"] == 3
    # Nothing in the file is a pickle: a safetensors header (JSON) and raw arrays.
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    assert set(header) == {"__metadata__", "mean", "scale", "weight.0", "bias.0"}


class _Explodes:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_is_refused_without_running_it(tmp_path, dataset, weights):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_Explodes(marker), protocol=2))
    with pytest.raises(HeadError, match="pickle"):
        load_head(evil)
    import torch

    zipped = tmp_path / "head.pt"
    torch.save({"weight": torch.zeros(2)}, zipped)
    with pytest.raises(HeadError, match="pickle or archive"):
        load_head(zipped)
    _, held_out = dataset
    done = run([str(held_out["tone"][0]), "--head", str(evil), "--weights", weights, "-q"])
    assert done.returncode == 2 and not marker.exists()
    assert done.stderr.decode().count("\n") == 1 and "pickle" in done.stderr.decode()


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "not a head file"),
        (b"hello world, not a head at all", "not a head file"),
        (None, "not a dymn-cli head"),
        ("truncated", "damaged head file"),
    ],
)
def test_damaged_or_foreign_files_are_one_clear_error(tmp_path, trained, content, reason):
    path = tmp_path / "h.safetensors"
    if content is None:
        from safetensors.numpy import save

        path.write_bytes(save({"x": np.zeros(3, np.float32)}))
    elif content == "truncated":
        path.write_bytes(trained[0].read_bytes()[:-100])
    else:
        path.write_bytes(content)
    with pytest.raises(HeadError, match=reason):
        load_head(path)
    with pytest.raises(HeadError, match="no such head file"):
        load_head(tmp_path / "missing.safetensors")


def test_a_head_for_another_backbone_is_refused(trained, dataset, golden_dir, tagger):
    path, report = trained
    with pytest.raises(HeadError, match="trained on the embeddings of mn04_seed0"):
        Tagger(weights=golden_dir / "dymn04_seed0.pt", device="cpu", head=path)
    other = ClassifierHead(
        classes=("a", "b"),
        backbone=Backbone("mn04_seed0", ("0" * 64,), tagger.embedding_dim),
        mean=np.zeros(tagger.embedding_dim),
        scale=np.ones(tagger.embedding_dim),
        layers=[(np.zeros((tagger.embedding_dim, 2)), np.zeros(2))],
    )
    with pytest.raises(HeadError, match="not of mn04_seed0"):  # same name, other weights
        tagger.use_head(other)
    _, held_out = dataset
    done = run([str(held_out["tone"][0]), "--head", str(path), "--weights", str(golden_dir / "dymn04_seed0.pt"), "-q"])
    assert done.returncode == 2 and "trained on the embeddings of mn04_seed0" in done.stderr.decode()
    assert done.stderr.decode().count("\n") == 1


@pytest.fixture(scope="module")
def headed(trained, weights) -> Tagger:
    return Tagger(weights=weights, device="cpu", head=trained[0])


def tag_into(
    tagger: Tagger,
    audio: str,
    output: Path | None,
    *,
    format: str | None = None,
    labels: str | None = None,
    exclude: str | None = None,
    with_audioset: bool = False,
    plot: Path | None = None,
    **options,
) -> None:
    """A run through the library function behind `dymn-tag` (the CLI only parses options into it)."""
    from dymn_cli.run.options import build_output_options, build_sinks, choose_head
    from dymn_cli.run.runner import RunSettings, label_inputs

    chosen = choose_head(tagger.head.path, with_audioset=with_audioset)
    tagger.use_head(chosen.head, with_audioset=with_audioset)
    built = build_output_options(
        format=format,
        top=None,
        threshold=options.pop("threshold", None),
        labels=labels,
        exclude=exclude,
        vocabulary=chosen.vocabulary,
        **options,
    )
    summary = label_inputs(
        [audio],
        tagger=tagger,
        output=output,
        format=format,
        options=built,
        settings=RunSettings(window=chosen.window, hop=chosen.hop, workers=0),
        extra_sinks=build_sinks(options=built, paths=[audio], plot=plot),
    )
    assert summary.exit_code == 0


def test_every_output_format_carries_the_heads_classes(tmp_path, trained, dataset, weights, headed):
    path, _ = trained
    _, held_out = dataset
    audio = str(held_out["tone"][0])

    def names_in(text: str) -> set[str]:
        return {name for name in CLASSES if name in text}

    # Through the command once: a JSON document with the head's classes, and where they come from.
    done = run([audio, "--head", str(path), "--weights", weights, "-q", "--top", "all", "-f", "json"])
    document = json.loads(done.stdout)
    assert [entry["label"] for entry in document["files"][0]["labels"]][0] == "tone"  # the held-out tone is a tone
    assert document["settings"]["head_classes"] == list(CLASSES) and document["head"]["classes"] == list(CLASSES)

    for extension in ("csv", "json", "jsonl"):
        out = tmp_path / f"out.{extension}"
        tag_into(headed, audio, out)
        assert names_in(out.read_text()) == set(CLASSES), extension
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert {r["mid"] for r in rows} == {f"head:{c}" for c in CLASSES} and rows[0]["label"] == "tone"

    pyarrow = pytest.importorskip("pyarrow.parquet")
    tag_into(headed, audio, tmp_path / "out.parquet", timeline=True)
    table = pyarrow.read_table(tmp_path / "out.parquet").to_pydict()
    assert set(table["label"]) == set(CLASSES) and len(table["start"]) == 2 * 4

    tag_into(headed, audio, tmp_path / "timeline.jsonl", timeline=True, events=True, threshold=0.5)
    lines = [json.loads(line) for line in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    (record,) = [line for line in lines if line.get("path") == audio]
    assert {label["label"] for w in record["windows"] for label in w["labels"]} <= set(CLASSES)
    assert [e["label"] for e in record["events"]] == ["tone"] and record["events"][0]["mid"] == "head:tone"

    tag_into(headed, audio, tmp_path / "table.txt", format="table", timeline=True)
    assert names_in((tmp_path / "table.txt").read_text()) == set(CLASSES)

    for export, suffix in (("audacity", ".labels.txt"), ("raven", ".Table.1.selections.txt")):
        folder = tmp_path / export
        tag_into(headed, audio, folder, format=export, threshold=0.5)
        (written,) = list(folder.rglob(f"*{suffix}"))
        assert names_in(written.read_text()) == {"tone"}
    assert "head:tone" in written.read_text()  # Raven's MID column

    pytest.importorskip("matplotlib")
    picture = tmp_path / "tone.png"
    tag_into(headed, audio, tmp_path / "p.jsonl", plot=picture, timeline=True)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_and_exclude_select_among_the_heads_and_audioset_classes(tmp_path, trained, dataset, weights, headed):
    path, _ = trained
    _, held_out = dataset
    audio = str(held_out["clicks"][0])

    def labelled(**options) -> list[dict]:
        out = tmp_path / "out.csv"
        tag_into(headed, audio, out, **options)
        return list(csv.DictReader(io.StringIO(out.read_text())))

    assert {r["label"] for r in labelled(labels="tone,noise")} == {"tone", "noise"}
    assert {r["label"] for r in labelled(exclude="head:tone")} == {"chirp", "clicks", "noise"}
    both = labelled(labels="tone,Dog", with_audioset=True)
    assert [r["label"] for r in both if r["mid"].startswith("head:")] == ["tone"]
    assert {r["label"] for r in both if not r["mid"].startswith("head:")} >= {"Dog", "Bark"}  # the subtree of Dog
    assert {int(r["index"]) for r in both if r["label"] == "Dog"} == {74}  # AudioSet keeps its output index
    assert len(labelled(with_audioset=True)) == 527 + 4
    with pytest.raises(UsageError, match="--with-audioset"):
        labelled(labels="Dog")
    with pytest.raises(UsageError, match="did you mean 'tone'"):
        labelled(labels="tones")
    refused = run([audio, "--head", str(path), "--weights", weights, "-q", "--labels", "Dog"])
    assert refused.returncode == 2 and "--with-audioset" in refused.stderr.decode()
    assert refused.stderr.decode().count("\n") == 1
    alone = run([audio, "--with-audioset", "--weights", weights, "-q"])
    assert alone.returncode == 2 and "--with-audioset goes with --head" in alone.stderr.decode()


def test_the_heads_windows_are_the_default_and_another_window_warns(trained, caplog):
    from dymn_cli.run.options import choose_head

    path, _ = trained
    chosen = choose_head(path)
    assert (chosen.window, chosen.hop) == (WINDOW, HOP) and chosen.vocabulary.names() == list(CLASSES)
    assert not caplog.records
    other = choose_head(path, window=1.5, with_audioset=True)
    assert (other.window, other.hop) == (1.5, HOP) and len(other.vocabulary) == 531
    assert "trained on 1 s windows" in caplog.text
    plain = choose_head(None, hop=2.0)
    assert (plain.window, plain.hop, plain.head) == (10.0, 2.0, None)


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


def test_vocabulary_orders_audioset_first():
    both = Vocabulary.with_head(["frog", "fault"], audioset=True)
    assert len(both) == 529 and both[527].name == "frog" and both[527].id == "head:frog" and both[0].mid == "/m/09x0r"
    alone = Vocabulary.with_head(["frog"])
    assert not alone.has_audioset and alone[0].index == 0 and Vocabulary.audioset().has_audioset
