"""Every loader of a file a command reads, fuzzed: cut short, bits flipped, bytes replaced, wrong dtypes,
object arrays, zero-length arrays. Each one returns what it reads or raises a `UsageError` (one line,
exit 2), never anything else; and `search` with each damaged index is one line, exit 2."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dymn_cli.audioset.thresholds import parse_thresholds
from dymn_cli.audioset.vocabulary import Vocabulary
from dymn_cli.errors import UsageError
from dymn_cli.evaluate.truth import read_truth
from dymn_cli.graph_metadata import GraphMetadata
from dymn_cli.models.head import Backbone, ClassifierHead, head_bytes, load_head
from dymn_cli.transfer.similarity import load_index
from dymn_cli.writers.embeddings_archive import read_embeddings_archive
from tests.audio_factory import tone
from tests.support import DYMN04_WEIGHTS, SAFETY_NET, dymn_tag

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _index_arrays(rows: int = 3, width: int = 8) -> dict[str, np.ndarray]:
    windows = np.arange(rows * 2) // 2
    return {
        "paths": np.array([f"f{n}.wav" for n in range(rows)]),
        "clip_embeddings": np.ones((rows, width), np.float32),
        "window_embeddings": np.ones((rows * 2, width), np.float32),
        "window_path_index": windows.astype(np.int64),
        "window_starts": np.arange(rows * 2, dtype=np.float64),
        "window_ends": np.arange(rows * 2, dtype=np.float64) + 1,
        "window_seconds": np.array(1.0),
        "hop_seconds": np.array(1.0),
    }


GOOD_INDEX = _npz(**_index_arrays())
GOOD_HEAD = head_bytes(
    ClassifierHead(
        classes=("a", "b"),
        backbone=Backbone("dymn04_seed0", ("0" * 64,), 4),
        mean=np.zeros(4),
        scale=np.ones(4),
        layers=[(np.zeros((4, 2), np.float32), np.zeros(2, np.float32))],
    )
)
GOOD_THRESHOLDS = b"label,mid,threshold\nSpeech,/m/09x0r,0.3\nMusic,/m/04rlf,0.25\n"
GOOD_TRUTH = b"path,label,start,end\na.wav,Speech,0.0,1.5\nb.wav,Music,2,3\n"


@st.composite
def damaged(draw: st.DrawFn, good: bytes) -> bytes:
    """`good` cut short, with bits flipped, a run of bytes replaced, or garbage appended."""
    data = bytearray(good)
    how = draw(st.sampled_from(["cut", "flip", "replace", "append"]))
    if how == "cut":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if how == "replace":
        start = draw(st.integers(0, len(data) - 1))
        noise = draw(st.binary(min_size=1, max_size=64))
        data[start : start + len(noise)] = noise
        return bytes(data)
    return bytes(data) + draw(st.binary(min_size=1, max_size=64))


ODD_ARRAYS = st.sampled_from(
    [
        np.array(["a", None], dtype=object),
        np.zeros(0),
        np.zeros((0, 8), np.float32),
        np.zeros((2, 0), np.float32),
        np.array([1, 2], np.int8),
        np.array([np.nan, np.inf]),
        np.array(["x", "y"]),
        np.array(3.0),
        np.zeros((2, 2, 2)),
        np.array([b"a", b"b"]),
        np.array([1 + 2j, 3j]),
        np.array([-1, 99], np.int64),
    ]
)


@st.composite
def odd_index(draw: st.DrawFn) -> bytes:
    """An index with one or two of its arrays replaced by an array of another kind, or left out."""
    arrays = _index_arrays()
    for key in draw(st.lists(st.sampled_from(sorted(arrays)), min_size=1, max_size=2, unique=True)):
        if draw(st.booleans()):
            arrays[key] = draw(ODD_ARRAYS)
        else:
            del arrays[key]
    return _npz(**arrays)


def _loads_or_refuses(load, path: Path) -> None:
    try:
        load(path)
    except UsageError as error:
        assert "\n" not in str(error) and str(path) in str(error)


@FUZZ
@given(data=st.one_of(damaged(GOOD_INDEX), odd_index()))
def test_the_index_loader_reads_or_refuses(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "index.npz"
    path.write_bytes(data)
    _loads_or_refuses(read_embeddings_archive, path)
    _loads_or_refuses(load_index, path)
    _loads_or_refuses(lambda p: load_index(p, windows=False, memory_map=True), path)


@FUZZ
@given(data=damaged(GOOD_HEAD))
def test_the_head_loader_reads_or_refuses(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "head.safetensors"
    path.write_bytes(data)
    _loads_or_refuses(load_head, path)


VOCABULARY = Vocabulary.audioset()


@FUZZ
@given(data=damaged(GOOD_THRESHOLDS))
def test_the_thresholds_loader_reads_or_refuses(data: bytes) -> None:
    try:
        parse_thresholds(data, VOCABULARY, name="t.csv")
    except UsageError as error:
        assert "\n" not in str(error)


@FUZZ
@given(data=damaged(GOOD_TRUTH))
def test_the_truth_loader_reads_or_refuses(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "truth.csv"
    path.write_bytes(data)
    _loads_or_refuses(lambda p: read_truth([p]), path)


def test_loaders_refuse_what_is_not_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # (no writer: a loader that waited on it would hang here)
    for load in (read_embeddings_archive, load_head):
        for path in (tmp_path, Path("/dev/zero"), tmp_path / "absent", fifo):
            with pytest.raises(UsageError):
                load(path)


DAMAGED_INDEXES = {
    "truncated": GOOD_INDEX[: len(GOOD_INDEX) // 2],
    "no entries": _npz(),
    "zero rows": _npz(paths=np.zeros(0, dtype="U1"), clip_embeddings=np.zeros((0, 384), np.float32)),
    "object array": _npz(paths=np.array(["a", None], dtype=object), clip_embeddings=np.ones((2, 384), np.float32)),
    "empty file": b"",
    "NaN embeddings": _npz(paths=np.array(["a"]), clip_embeddings=np.full((1, 384), np.nan, np.float32)),
}


def test_search_with_a_damaged_index_is_one_line_exit_2(tmp_path: Path) -> None:
    query = tone(tmp_path / "q.wav", freq=440.0, seconds=0.3)
    for name, data in DAMAGED_INDEXES.items():
        index = tmp_path / f"{name.replace(' ', '_')}.npz"
        index.write_bytes(data)
        done = dymn_tag(["search", str(query), "--index", str(index), "--weights", str(DYMN04_WEIGHTS)], timeout=SAFETY_NET)
        stderr = done.stderr.decode()
        assert done.returncode == 2, (name, stderr)
        assert len(stderr.strip().splitlines()) == 1 and str(index) in stderr, (name, stderr)


GOOD_PROPS = GraphMetadata(
    labels=("Speech", "Music"), mids=("/m/09x0r", "/m/04rlf"), model="dymn04_as", checkpoint_sha256="0" * 64, window=10.0, hop=1.0
).to_props()


@st.composite
def damaged_props(draw: st.DrawFn) -> dict[str, str]:
    """A graph's metadata with some values replaced by any text, or by JSON of another shape, or left out."""
    props = dict(GOOD_PROPS)
    for key in draw(st.lists(st.sampled_from(sorted(props)), min_size=1, max_size=3, unique=True)):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            del props[key]
        elif choice == 1:
            props[key] = draw(st.text(max_size=40))
        elif choice == 2:
            props[key] = draw(st.sampled_from(["[1, 2]", "{}", "null", "nan", "inf", "-1", "1e999", "[" * 100_000, '["a"]']))
        else:
            props[key] = draw(st.from_regex(r"-?[0-9]{1,400}(\.[0-9]*)?", fullmatch=True))
    return props


@FUZZ
@given(props=damaged_props())
def test_the_graph_metadata_reader_reads_or_refuses(props: dict[str, str]) -> None:
    try:
        GraphMetadata.from_props(props, "graph.onnx")
    except UsageError as error:
        assert "\n" not in str(error) and str(error).startswith("graph.onnx: ")


def test_json_nested_beyond_the_parsers_depth_is_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"path": "a.wav", "labels": ' + "[" * 100_000 + "\n")
    audio = tone(tmp_path / "q.wav", freq=440.0, seconds=0.3)
    for argv in (
        ["merge", str(deep), "-o", str(tmp_path / "merged.jsonl")],
        [str(audio), "-o", str(deep), "--resume", "--weights", str(DYMN04_WEIGHTS)],
        ["evaluate", str(deep), "--truth", str(tmp_path / "q.wav")],
    ):
        done = dymn_tag(argv, timeout=SAFETY_NET)
        stderr = done.stderr.decode()
        assert done.returncode == 2 and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, (argv, stderr)
