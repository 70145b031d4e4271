"""Classification heads: `--head` in every output format, --labels / --exclude among the head's and
AudioSet's classes, the head's windows as the default, the vocabulary's order.

The backbone is the random-weight mn04 test checkpoint, whose embeddings (unlike its chaotic logits) are
of ordinary size and tell strongly different sounds apart: tones, noise, click trains and chirps, made
here with varied pitch, rate and level (tests/transfer/synthetic_classes.py; the trained head is
tests/transfer/conftest.py's `trained`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.errors import UsageError
from dymn_cli.tagger import Tagger
from tests.transfer.synthetic_classes import CLASSES, HOP, WINDOW, run


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


def test_vocabulary_orders_audioset_first():
    both = Vocabulary.with_head(["frog", "fault"], audioset=True)
    assert len(both) == 529 and both[527].name == "frog" and both[527].id == "head:frog" and both[0].mid == "/m/09x0r"
    alone = Vocabulary.with_head(["frog"])
    assert not alone.has_audioset and alone[0].index == 0 and Vocabulary.audioset().has_audioset
