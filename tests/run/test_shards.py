"""`--shard I/N`, part files (`--output-dir`) and `dymn-tag merge`: every input exactly once, and the
merged output equal to the single-machine one."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dymn_cli.audio.paths import walk_order_key
from dymn_cli.errors import UsageError
from dymn_cli.run.inputs import Input, walk_audio_files
from dymn_cli.run.runner import RunSettings, label_inputs
from dymn_cli.run.shards import Shard, parse_shard, select_shard, shard_of
from dymn_cli.writers.base import OutputOptions
from dymn_cli.writers.merge import merge_outputs
from dymn_cli.writers.registry import WRITERS
from tests.audio_factory import tone
from tests.support import SAFETY_NET, FakeTagger, dymn_tag

FORMATS = ("csv", "json", "jsonl", "parquet")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Files and subfolders whose walk order differs from plain sorted order (z.wav before m/...)."""
    root = tmp_path_factory.mktemp("tree")
    for n, name in enumerate(["a.wav", "z.wav", "m/x.wav", "sub/b.flac", "sub/deeper/c.wav", "sub/deeper/d.wav"]):
        tone(root / name, freq=220 + 110 * n, seconds=0.4 + 0.3 * n, noise=0.05, seed=n)
    (root / "sub" / "broken.wav").write_bytes(b"RIFF....WAVEjunk" * 8)
    return root


# --------------------------------------------------------------------------- partition and order


def test_parse_shard():
    assert parse_shard("3/10") == Shard(3, 10) and parse_shard(" 0 / 1 ") == Shard(0, 1)
    for bad in ("10/10", "1/0", "-1/3", "a/3", "3", "1/2/3"):
        with pytest.raises(UsageError):
            parse_shard(bad)


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_every_input_exactly_once(count):
    paths = [f"/data/set{i % 5}/clip {i:04d}.wav" for i in range(400)] + ["relative/é.mp3", "s3://bucket/k.flac"]
    inputs = [Input(p) for p in paths]
    shards = [select_shard(inputs, Shard(i, count)) for i in range(count)]
    taken = [item.path for shard in shards for item in shard]
    assert sorted(taken) == sorted(paths)  # each once
    for shard in shards:  # order kept, and the split does not depend on the other inputs
        assert [i.path for i in shard] == [p for p in paths if shard_of(p, count) == shards.index(shard)]
        assert select_shard(list(reversed(inputs)), Shard(shards.index(shard), count)) == list(reversed(shard))
    if count > 1:
        assert min(len(s) for s in shards) > 0.6 * len(paths) / count  # a hash spreads them evenly


@pytest.mark.slow
def test_shard_of_is_stable_across_processes():
    code = "from dymn_cli.run.shards import shard_of; print([shard_of(p, 5) for p in ('a.wav', '/x/y/z.flac', 'b c.ogg')])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": "123"})
    assert other.stdout.strip() == str([shard_of(p, 5) for p in ("a.wav", "/x/y/z.flac", "b c.ogg")])


def test_standard_input_cannot_be_sharded():
    with pytest.raises(UsageError, match="standard input"):
        select_shard([Input("a.wav"), Input("-")], Shard(0, 2))


def test_walk_order_key_reproduces_the_folder_walk(tree):
    walked = list(walk_audio_files(str(tree)))
    assert walked != sorted(walked)  # the tree is built so that plain sorting would differ
    shuffled = walked[:]
    random.Random(0).shuffle(shuffled)
    assert sorted(shuffled, key=walk_order_key) == walked


# --------------------------------------------------------------------------- merge, parts and resume (no model)


def fake_run(tree: Path, **kwargs) -> object:
    stop_after = kwargs.pop("stop_after", None)
    return label_inputs([str(tree)], tagger=lambda: FakeTagger(stop_after), options=OutputOptions(top=4), **kwargs)


def read(path: Path) -> object:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return table.to_pydict(), table.schema.metadata
    return path.read_bytes()


@pytest.mark.parametrize("format", FORMATS)
def test_merge_of_shards_equals_the_whole_run(tree, tmp_path, format):
    if format == "parquet":
        pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (pip install 'dymn-cli[ray]')")
    ext = WRITERS[format].extension
    whole = tmp_path / f"whole{ext}"
    fake_run(tree, output=whole)
    shards = [tmp_path / f"shard-{i}{ext}" for i in range(3)]
    for i, target in enumerate(shards):
        fake_run(tree, output=target, shard=Shard(i, 3))
    merged = tmp_path / f"merged{ext}"
    summary = merge_outputs([str(s) for s in reversed(shards)], merged)
    assert read(merged) == read(whole)
    assert summary.files == 3 and not summary.duplicates
    assert summary.inputs == (6 if format in ("csv", "parquet") else 7)  # the long forms record no failures


def test_parts_resume_after_an_interruption_and_merge(tree, tmp_path):
    whole = tmp_path / "whole.jsonl"
    fake_run(tree, output=whole)
    parts = tmp_path / "parts"
    first = fake_run(tree, parts_dir=parts, part_size=2, stop_after=5, format="jsonl")
    assert first.interrupted is not None and first.tagged + first.failed == 5
    assert sorted(p.name for p in parts.iterdir()) == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    with pytest.raises(UsageError, match="--resume"):
        fake_run(tree, parts_dir=parts, format="jsonl")
    second = fake_run(tree, parts_dir=parts, part_size=2, resume=True, format="jsonl")
    assert second.skipped == 5 and second.tagged == 2  # JSONL records the failure too: not retried
    assert (parts / "part-00003.jsonl").exists()
    merged = tmp_path / "merged.jsonl"
    merge_outputs([parts], merged)
    assert merged.read_bytes() == whole.read_bytes()


def test_merge_refuses_mixed_formats_and_settings(tree, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    fake_run(tree, output=a, shard=Shard(0, 2))
    label_inputs(
        [str(tree)],
        tagger=lambda: FakeTagger(),
        output=b,
        options=OutputOptions(top=4),
        shard=Shard(1, 2),
        settings=RunSettings(hop=5.0),
    )
    with pytest.raises(UsageError, match="other settings"):
        merge_outputs([a, b], tmp_path / "m.json")
    (tmp_path / "x.csv").write_text("path\n")
    with pytest.raises(UsageError, match="one format"):
        merge_outputs([a, tmp_path / "x.csv"], tmp_path / "m.json")
    with pytest.raises(UsageError, match="no such"):
        merge_outputs([tmp_path / "missing.json"], tmp_path / "m.json")


def test_merge_keeps_a_result_over_an_error_record(tmp_path):
    ok = {"path": "/d/a.wav", "duration": 1.0, "n_windows": 1, "labels": []}
    (tmp_path / "1.jsonl").write_text(json.dumps(ok) + "\n")
    (tmp_path / "2.jsonl").write_text(json.dumps({"path": "/d/a.wav", "error": "x"}) + "\n")
    summary = merge_outputs([tmp_path / "1.jsonl", tmp_path / "2.jsonl"], tmp_path / "m.jsonl")
    assert summary.duplicates == ["/d/a.wav"]
    assert [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()] == [ok]


# --------------------------------------------------------------------------- the real command


@pytest.mark.slow
def test_cli_shards_cover_every_input_once_and_merge_to_the_single_machine_output(tree, tmp_path, dymn04_weights):
    # Batches of one window: a window's scores then never depend on which windows shared its batch,
    # so the comparison can be byte for byte.
    common = ["--weights", str(dymn04_weights), "--batch-size", "1", "--top", "5", "-q"]
    whole = tmp_path / "whole.jsonl"
    done = dymn_tag([str(tree), "-o", str(whole), *common], timeout=SAFETY_NET)
    assert done.returncode == 1, done.stderr  # the broken file
    expected = [json.loads(line)["path"] for line in whole.read_text().splitlines()]
    assert expected == list(walk_audio_files(str(tree)))
    shards = []
    for i in range(3):
        target = tmp_path / f"shard-{i}.jsonl"
        done = dymn_tag([str(tree), "--shard", f"{i}/3", "-o", str(target), *common], timeout=SAFETY_NET)
        assert done.returncode in (0, 1), done.stderr
        assert (done.returncode == 1) == ("broken.wav" in done.stderr.decode())
        shards.append([json.loads(line)["path"] for line in target.read_text().splitlines()] if target.exists() else [])
    assert sorted(p for shard in shards for p in shard) == sorted(expected)  # every input exactly once
    merged = tmp_path / "merged.jsonl"
    done = dymn_tag(["merge", *(str(tmp_path / f"shard-{i}.jsonl") for i in range(3)), "-o", str(merged)], timeout=SAFETY_NET)
    assert done.returncode == 0, done.stderr
    assert merged.read_bytes() == whole.read_bytes()


def test_without_ray_the_message_says_what_to_install(monkeypatch):
    from dymn_cli.inference.distributed import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UsageError, match=r"pip install 'dymn-cli\[ray\]'"):
        import_ray()
