"""Wide tables name every column once, whatever a head calls its classes: as pandas, polars, pyarrow
and DuckDB (which matches column names without case) read them."""

from __future__ import annotations

import numpy as np
import pytest

from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.errors import HeadError
from dymn_cli.models.head import Backbone, ClassifierHead
from dymn_cli.models.weights import sha256_file
from tests.audio_factory import sine, write_audio
from tests.support import DYMN04_WEIGHTS, dymn_tag

# Names a head may well use: AudioSet's own (`Speech`), one of them in another case (`hiss`, AudioSet
# has `Hiss`), and the wide table's own columns.
AWKWARD = ["Speech", "hiss", "path", "Duration", "head:x", "Dog bark"]


@pytest.mark.parametrize("audioset", [False, True])
def test_wide_columns_are_unique_without_case(audioset):
    vocabulary = Vocabulary.with_head(AWKWARD, audioset=audioset)
    columns = ["path", "duration", *(c.column for c in vocabulary)]
    assert len({c.casefold() for c in columns}) == len(columns)
    assert [c.column for c in vocabulary if c.source == "head"] == [f"head:{name}" for name in AWKWARD]


def test_audiosets_own_names_differ_in_more_than_case():
    names = [c.name for c in Vocabulary.audioset()]
    assert len({n.casefold() for n in names}) == len(names) == 527


def awkward_head(names=AWKWARD):
    rng = np.random.default_rng(0)
    return ClassifierHead(
        classes=tuple(names),
        backbone=Backbone("dymn04_seed0", (sha256_file(DYMN04_WEIGHTS),), 384),
        mean=np.zeros(384),
        scale=np.ones(384),
        layers=[(rng.normal(size=(384, len(names))) * 1e-12, np.zeros(len(names)))],
        activation="sigmoid",
    )


def test_a_head_whose_names_differ_only_in_case_is_refused():
    with pytest.raises(HeadError, match="differ in more than case: 'Dog' and 'dog'"):
        awkward_head(["Dog", "cat", "dog"])


@pytest.mark.slow
def test_train_refuses_classes_that_differ_only_in_case_before_embedding_anything(tmp_path):
    for name in ("Dog", "dog", "cat"):
        (tmp_path / "data" / name).mkdir(parents=True)
        write_audio(tmp_path / "data" / name / "a.wav", sine(1.0, 16_000), 16_000)
    done = dymn_tag(["train", str(tmp_path / "data"), "-o", str(tmp_path / "h.safetensors"), "-w", str(DYMN04_WEIGHTS)])
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines() == [
        f"dymn-tag: error: {tmp_path / 'data'}: the classes 'Dog' and 'dog' differ only in case: one name to --labels and to SQL; rename one"
    ]
    assert not (tmp_path / "h.safetensors").exists()
