"""Classification heads: the head file (a safetensors round trip with what the head needs), pickles
refused without running them, damaged or foreign files, a head for another backbone.

The backbone is the random-weight mn04 test checkpoint, whose embeddings (unlike its chaotic logits) are
of ordinary size and tell strongly different sounds apart: tones, noise, click trains and chirps, made
here with varied pitch, rate and level (tests/transfer/synthetic_classes.py; the trained head is
tests/transfer/conftest.py's `trained`).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from dymn_cli.errors import HeadError
from dymn_cli.models.head import Backbone, ClassifierHead, load_head
from dymn_cli.tagger import Tagger
from tests.transfer.synthetic_classes import CLASSES, HOP, WINDOW, run


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
