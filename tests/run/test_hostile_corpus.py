"""Hostile containers can neither stop nor hang a run (#14).

A real `dymn-tag` run (golden DyMN-0.4 checkpoint, 1-second windows) over the hostile corpus of
`tests/hostile_corpus.py` with decoding in process and in worker processes; arrays and streams that fail
alone through the API; and a hypothesis fuzz of corrupted containers through both decode paths.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dymn_cli.tagger import TagFailure, TagResult
from tests.audio_factory import sine
from tests.hostile_corpus import container_seeds, damaged_copies, lying_wavs, odd_named_copies, special_files
from tests.run.hostile_runs import FAST, assert_clean_stderr, dymn_tag, jsonl, summary_of


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, set[str]]:
    """A folder of the whole corpus; returns it and the names of the files that must be tagged."""
    root = tmp_path_factory.mktemp("corpus")
    seeds = container_seeds(root / "seeds")
    for name, data in lying_wavs().items():
        (root / "lying").mkdir(exist_ok=True)
        (root / "lying" / name).write_bytes(data)
    (root / "damaged").mkdir()
    for name, path in seeds.items():
        for damaged, data in damaged_copies(name, path.read_bytes()).items():
            (root / "damaged" / damaged).write_bytes(data)
    special_files(root / "special")
    odd_named_copies(root / "odd", seeds["pcm16.wav"].read_bytes())
    return root, {os.fspath(p) for p in seeds.values()}


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_hostile_corpus_gives_one_clean_outcome_per_input(corpus, tmp_path, workers):
    root, must_tag = corpus
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    done = dymn_tag([*FAST, "-j", workers, "--file-timeout", "30", str(root), "-o", str(out)])
    assert time.monotonic() - started < 200
    text = assert_clean_stderr(done.stderr)
    tagged, failed, _ = summary_of(text)
    records = jsonl(out)
    assert done.returncode == 1 and tagged + failed == len(records)
    by_path = {r["path"]: r for r in records}
    assert must_tag <= {p for p, r in by_path.items() if "labels" in r}, "a valid container failed"
    odd = [p for p in by_path if "/odd/" in p]
    assert len(odd) == 10 and all("labels" in by_path[p] for p in odd)
    for record in records:
        if "error" in record:
            assert record["error"].strip() and "\n" not in record["error"].replace(record["path"], "")
        else:
            assert all(np.isfinite(label["score"]) for label in record["labels"])
    # The walk never opened the FIFO, the socket or /dev/zero: one warning line names them.
    (warning,) = [line for line in text.splitlines() if "special file" in line]
    assert "fifo.wav (FIFO)" in warning and "socket.wav (socket)" in warning and "zero.wav (character device)" in warning
    special = os.fspath(root / "special")
    assert {os.path.basename(p) for p in by_path if p.startswith(special)} == {"dangling.wav", "loop.wav"}
    # a dangling link and a link loop are inputs that fail with their reason
    assert "error" in by_path[os.fspath(root / "special" / "dangling.wav")]
    assert "error" in by_path[os.fspath(root / "special" / "loop.wav")]
    # headers that lie about the rate fail that file with a reason about it
    assert "sample rate of 1 Hz" in by_path[os.fspath(root / "lying" / "rate-one.wav")]["error"]


def test_arrays_and_streams_fail_alone_through_the_api(tagger, tmp_path):
    good = sine(1.0, 32_000, 1)[:, 0]

    class Unreadable:
        name = "broken-stream"

        def read(self, size: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    outcomes = list(
        tagger.tag_many(
            [good, np.zeros((3, 4, 5)), Unreadable(), np.full(100, np.nan), good], sample_rate=32_000, window=1.0, hop=1.0
        )
    )
    assert [type(o) for o in outcomes] == [TagResult, TagFailure, TagFailure, TagFailure, TagResult]
    assert all(o.reason.strip() for o in outcomes if isinstance(o, TagFailure))
    assert "Input/output error" in outcomes[2].reason


@pytest.fixture(scope="module")
def fuzz_seeds(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzzseeds")
    seeds = container_seeds(folder)
    return {
        name: seeds[name].read_bytes()
        for name in (
            "pcm16.wav",
            "extensible.wav",
            "lossless.flac",
            "layer3.mp3",
            "aac.m4a",
            "opus.webm",
            "vorbis.ogg",
            "apple.caf",
        )
    }


@st.composite
def mutated(draw, seeds: dict[str, bytes]) -> bytes:
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds)))])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "overwrite", "truncate", "insert", "header"]))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            data[at : at + 8] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:  # the first 64 bytes say what the rest is
            spot = draw(st.integers(0, 63))
            data[spot : spot + 4] = draw(
                st.sampled_from([b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x00\x00\x00", b"\x00\x00\x00\x80"])
            )
    return bytes(data)


@pytest.fixture(scope="module")
def fuzz_strategy(fuzz_seeds):
    return mutated(fuzz_seeds)


@pytest.mark.slow
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_mutated_containers_through_both_decode_paths(tagger, fuzz_strategy, two_files, tmp_path, data):
    raw = data.draw(fuzz_strategy)
    mutant = tmp_path / "mutant.bin"
    mutant.write_bytes(raw)
    for workers in (0, 1):
        started = time.monotonic()
        outcomes = list(
            tagger.tag_many([two_files[0], os.fspath(mutant), two_files[1]], window=1.0, hop=1.0, workers=workers, timeout=20)
        )
        assert time.monotonic() - started < 40, "a case ran past its time limit"
        assert [o.source if hasattr(o, "source") else None for o in outcomes]  # one outcome per input
        assert isinstance(outcomes[0], TagResult) and isinstance(outcomes[2], TagResult)
        middle = outcomes[1]
        if isinstance(middle, TagFailure):
            assert middle.reason.strip() and "Traceback" not in middle.reason and "\n" not in middle.reason
        else:
            assert np.isfinite(middle.scores).all()
