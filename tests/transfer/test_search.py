"""`dymn-tag search`: exact cosine search over the embeddings archive that `--embeddings` writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dymn_cli.errors import UsageError
from dymn_cli.tagger import Tagger
from dymn_cli.transfer.similarity import EmbeddingIndex, load_index, search, search_audio, top_similar
from tests.support import DYMN_TAG, SAFETY_NET
from tests.transfer.synthetic_classes import RATE, synthetic


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([DYMN_TAG, *args], capture_output=True, timeout=SAFETY_NET)


@pytest.fixture(scope="module")
def weights(golden_dir) -> str:
    return str(golden_dir / "mn04_seed0.pt")


@pytest.fixture(scope="module")
def library(tmp_path_factory, weights) -> tuple[Path, Path]:
    """A folder of one-second sounds, two near-duplicates of `a.wav` among them, and its index
    (clip and window embeddings) written by `dymn-tag --embeddings --timeline`."""
    root = tmp_path_factory.mktemp("library")
    audio = root / "audio"
    audio.mkdir()
    original = synthetic("chirp", 2, seconds=1.0)
    soundfile.write(audio / "a.wav", original, RATE)
    rng = np.random.default_rng(3)
    soundfile.write(audio / "a_louder.wav", np.clip(original * 1.25, -1, 1), RATE)
    soundfile.write(audio / "a_hiss.wav", original + 0.0003 * rng.standard_normal(len(original)).astype(np.float32), RATE)
    for n, (kind, variant) in enumerate([("tone", 1), ("tone", 5), ("noise", 0), ("clicks", 2), ("noise", 3), ("clicks", 6)]):
        soundfile.write(audio / f"other{n}.wav", synthetic(kind, variant, seconds=1.0), RATE)
    index = root / "index.npz"
    done = run(
        [
            str(audio),
            "--weights",
            weights,
            "--window",
            "1",
            "--timeline",
            "--embeddings",
            str(index),
            "-o",
            str(root / "tags.jsonl"),
            "-q",
        ]
    )
    assert done.returncode == 0, done.stderr
    return audio, index


def test_a_query_finds_its_own_file_first_then_its_near_duplicates(library, weights):
    audio, index_path = library
    tagger = Tagger(weights=weights, device="cpu")
    for index in (load_index(index_path, windows=False), load_index(index_path)):
        (result,) = search_audio(tagger, [str(audio / "a.wav")], index, top=4)
        paths = [Path(hit.path).name for hit in result.hits]
        assert paths[0] == "a.wav" and result.hits[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert set(paths[1:3]) == {"a_louder.wav", "a_hiss.wav"}
        assert [hit.rank for hit in result.hits] == [1, 2, 3, 4]
        assert all(x.similarity >= y.similarity for x, y in zip(result.hits, result.hits[1:]))
        assert (result.hits[0].start is not None) == index.windows
    assert load_index(index_path).windows and load_index(index_path).window_seconds == 1.0
    assert isinstance(load_index(index_path, memory_map=True).embeddings, np.memmap)  # read as searched
    assert not isinstance(load_index(index_path).embeddings, np.memmap)


def test_a_compressed_archive_is_read_into_memory_and_searched_alike(library, tmp_path):
    _, index_path = library
    with np.load(index_path) as archive:
        np.savez_compressed(tmp_path / "small.npz", **{name: archive[name] for name in archive.files})
    mapped, copied = load_index(index_path, memory_map=True), load_index(tmp_path / "small.npz")
    assert not isinstance(copied.embeddings, np.memmap)
    queries = np.asarray(mapped.embeddings[:3])
    for x, y in zip(search(mapped, queries, top=5), search(copied, queries, top=5)):
        assert [(h.rank, h.path, h.start) for h in x] == [(h.rank, h.path, h.start) for h in y]
        np.testing.assert_allclose([h.similarity for h in x], [h.similarity for h in y], rtol=1e-6)


def test_search_command_writes_json_lines_in_a_pipe(library, weights):
    audio, index = library
    done = run(
        ["search", str(audio / "a.wav"), str(audio / "other0.wav"), "--index", str(index), "--weights", weights, "--top", "3"]
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(records) == 6 and set(records[0]) == {"query", "rank", "path", "start", "end", "similarity"}
    assert records[0]["path"] == str(audio / "a.wav") and records[3]["path"] == str(audio / "other0.wav")
    missing = run(["search", str(audio / "a.wav"), str(audio / "nope.wav"), "--index", str(index), "--weights", weights])
    assert (
        missing.returncode == 1 and b"nope.wav" in missing.stderr and len(missing.stdout.splitlines()) == 9
    )  # (the whole index)
    no_index = run(["search", str(audio / "a.wav"), "--index", str(audio / "none.npz"), "--weights", weights])
    assert no_index.returncode == 2 and b"no such index file" in no_index.stderr


def test_search_is_exact_over_blocks_and_ties_keep_index_order():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1000, 16)).astype(np.float32)
    vectors[10] = vectors[20] * 3  # same direction: a tie, kept in index order
    vectors[30] = 0  # a silent entry resembles nothing
    index = EmbeddingIndex(embeddings=vectors, paths=np.array(["x"]), path_index=np.zeros(1000, dtype=np.int64))
    queries = np.concatenate([vectors[20:21], rng.standard_normal((4, 16)).astype(np.float32)])
    values, rows = top_similar(index, queries, top=7, block_rows=97)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
    expected = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    for q in range(len(queries)):
        best = np.lexsort((np.arange(1000), -expected[q]))[:7]
        assert rows[q].tolist() == best.tolist()
        np.testing.assert_allclose(values[q], expected[q][best], rtol=1e-5)
    assert rows[0][:2].tolist() == [10, 20]
    assert len(search(index, queries[:1], top=5000)[0]) == 1000


def test_an_index_of_another_width_or_no_index_is_one_clear_error(tmp_path):
    np.savez(tmp_path / "small.npz", paths=np.array(["a"]), clip_embeddings=np.ones((1, 10), np.float32))
    index = load_index(tmp_path / "small.npz")
    with pytest.raises(UsageError, match="384 dimensions, the index.s 10"):
        search(index, np.ones((1, 384)), top=3)
    with pytest.raises(UsageError, match="no window embeddings"):
        load_index(tmp_path / "small.npz", windows=True)
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(UsageError, match="not an embeddings archive"):
        load_index(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(UsageError, match="not an embeddings archive"):
        load_index(tmp_path / "text.npz")


def test_merge_joins_archives_of_shards_into_the_whole_index(library, tmp_path):
    _, index = library
    with np.load(index) as archive:
        whole = {name: archive[name] for name in archive.files}
    n = len(whole["paths"])
    for shard, rows in (("s1", [0, 3, 5, 7]), ("s0", [1, 2, 4, 6, 8, 3])):  # row 3 in both
        windows = np.isin(whole["window_path_index"], rows)
        renumber = {row: k for k, row in enumerate(rows)}
        np.savez(
            tmp_path / f"{shard}.npz",
            paths=whole["paths"][rows],
            clip_embeddings=whole["clip_embeddings"][rows],
            window_embeddings=whole["window_embeddings"][windows],
            window_path_index=np.array([renumber[r] for r in whole["window_path_index"][windows]]),
            window_starts=whole["window_starts"][windows],
            window_ends=whole["window_ends"][windows],
            window_seconds=whole["window_seconds"],
            hop_seconds=whole["hop_seconds"],
            model=whole["model"],
            checkpoints=whole["checkpoints"],
        )
    done = run(["merge", str(tmp_path / "s1.npz"), str(tmp_path / "s0.npz"), "-o", str(tmp_path / "merged.npz")])
    assert done.returncode == 0 and f"merged {n} inputs from 2 files".encode() in done.stderr
    with np.load(tmp_path / "merged.npz") as merged:
        assert set(merged.files) == set(whole)
        for name in whole:
            np.testing.assert_array_equal(merged[name], whole[name], err_msg=name)
    np.savez(tmp_path / "narrow.npz", paths=np.array(["z"]), clip_embeddings=np.ones((1, 3), np.float32))
    mixed = run(["merge", str(tmp_path / "s1.npz"), str(tmp_path / "narrow.npz"), "-o", str(tmp_path / "bad.npz")])
    assert mixed.returncode == 2 and b"other settings" in mixed.stderr and not (tmp_path / "bad.npz").exists()
