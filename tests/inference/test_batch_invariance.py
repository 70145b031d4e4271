"""A file's results on the CPU are the same bytes whatever its windows are batched with (issue #13).

The random-weight golden checkpoints make this a sharp test: their logits reach 1e11, so a float32
difference of one unit in the last place anywhere in the network shows as flipped scores. The same
check, exhaustive, is benchmarks/batch_invariance.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dymn_cli import Tagger
from dymn_cli.inference.engine import InferenceEngine
from dymn_cli.models.build import build_model
from dymn_cli.models.common import MIN_PRODUCT_ROWS, rows_product, sigmoid
from tests.support import GOLDEN, SAFETY_NET, dymn_tag

RATE = 32_000


def varied_windows(n: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Recorded audio, tones, noise, silence and a zero-padded last window, `n` in all."""
    rng = np.random.default_rng(seed)
    samples = round(seconds * RATE)
    recorded = torch.load(GOLDEN / "frontend.pt")["long_23.7s"].numpy()
    t = np.arange(samples) / RATE
    kinds = [
        lambda: recorded[(start := rng.integers(0, len(recorded) - samples)) : start + samples],
        lambda: sum(0.2 * np.sin(2 * np.pi * f * t) for f in rng.uniform(50, 8000, 3)),
        lambda: 0.1 * rng.standard_normal(samples),
        lambda: np.zeros(samples),
        lambda: np.concatenate([recorded[: samples // 3], np.zeros(samples - samples // 3)]),
    ]
    return np.stack([kinds[i % len(kinds)]() for i in range(n)]).astype(np.float32)


# --------------------------------------------------------------------------- the pieces


@pytest.mark.parametrize("k,n", [(4, 153_600), (32, 212), (128, 3852), (960, 1280), (1280, 527), (24, 32)])
def test_rows_product_gives_a_row_the_same_bytes_whatever_the_other_rows(k, n):
    generator = torch.Generator().manual_seed(k)
    matrix, bias = torch.randn(k, n, generator=generator), torch.randn(n, generator=generator)
    storage = torch.randn(24 * k + 3, generator=generator)
    for rows in [1, 2, 3, MIN_PRODUCT_ROWS - 1, MIN_PRODUCT_ROWS, 13, 24]:
        for offset in (0, 3):  # (a window's rows need not start on an aligned address)
            x = storage[offset : offset + rows * k].view(rows, k)
            together = rows_product(x, matrix, bias)
            for i in range(rows):
                assert torch.equal(together[i], rows_product(x[i].clone()[None], matrix, bias)[0]), (rows, offset, i)
    # And it is the product: only the summation order of float32 roundings is its own.
    torch.testing.assert_close(rows_product(x, matrix, bias), torch.addmm(bias, x, matrix), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", [(36,), (5, 99), (250, 24)])  # (no multiple of a vector's width)
def test_sigmoid_gives_a_window_the_same_bytes_wherever_it_sits_in_the_batch(shape):
    x = torch.randn(9, *shape, generator=torch.Generator().manual_seed(0)) * 6
    for size in range(1, len(x) + 1):
        together = sigmoid(x[:size])
        for i in range(size):
            # the same bytes as torch's own sigmoid of that window alone
            assert torch.equal(together[i], torch.sigmoid(x[i].clone())), (size, i)


# --------------------------------------------------------------------------- the engine, window by window


def batched_outputs_differing(engine: InferenceEngine, windows: np.ndarray, alone: list) -> list[tuple[int, int, int]]:
    """(batch start, batch size, position) of every window whose outputs in that batch are not bitwise
    those it gets alone; over every run of consecutive windows."""
    differing = []
    for size in range(1, len(windows) + 1):
        for start in range(len(windows) - size + 1):
            logits, embeddings = engine(windows[start : start + size])
            for position in range(size):
                expected_logits, expected_embedding = alone[start + position]
                if not (
                    np.array_equal(logits[position], expected_logits[0])
                    and np.array_equal(embeddings[position], expected_embedding[0])
                ):
                    differing.append((start, size, position))
    return differing


# (model, window length: each model also meets another shape of feature maps)
CASES = [("dymn04", 10.0), ("mn04", 3.3), ("dymn10", 2.5)]


@pytest.mark.parametrize("name,seconds", CASES, ids=[name for name, _ in CASES])
def test_a_windows_outputs_do_not_depend_on_its_batch_its_place_or_the_lanes(name, seconds):
    model = build_model(torch.load(GOLDEN / f"{name}_seed0.pt"))
    windows = varied_windows(5, seconds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one_lane = InferenceEngine(model, device="cpu", lanes=1)
        alone = [one_lane(window[None]) for window in windows]
        assert batched_outputs_differing(one_lane, windows, alone) == []
    finally:
        torch.set_num_threads(threads)
    # Two lanes share each batch out (so a window meets other share sizes and places), one thread each.
    two_lanes = InferenceEngine(model, device="cpu", lanes=2)
    assert batched_outputs_differing(two_lanes, windows, alone) == []
    # (The golden inputs still give the golden outputs: tests/test_models.py checks them.)


# --------------------------------------------------------------------------- the whole pipeline


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[str]:
    """Five short files: one window, several, a last window padded; noise, tones and silence."""
    folder = tmp_path_factory.mktemp("invariance")
    rng = np.random.default_rng(13)
    paths = []
    for i, seconds in enumerate([0.4, 2.7, 5.3, 1.0, 3.9]):
        t = np.arange(round(seconds * RATE)) / RATE
        audio = [0.1 * rng.standard_normal(len(t)), 0.3 * np.sin(2 * np.pi * 440 * t), np.zeros(len(t))][i % 3]
        path = folder / f"f{i}.wav"
        soundfile.write(path, audio.astype(np.float32), RATE, subtype="FLOAT")
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(weights=GOLDEN / "dymn04_seed0.pt", device="cpu")


def result_bytes(outcome) -> tuple[bytes, ...]:
    return tuple(
        np.ascontiguousarray(a).tobytes() for a in (outcome.scores, outcome.window_scores, outcome.embedding, outcome.embeddings)
    )


WINDOWING = {"window": 2.0, "hop": 1.0}


@pytest.mark.slow
@settings(
    max_examples=8, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_tag_many_gives_the_same_bytes_for_any_batch_size_worker_count_and_order(tagger, corpus, data):
    plain = {o.source: result_bytes(o) for o in tagger.tag_many(corpus, **WINDOWING)}
    order = data.draw(st.permutations(corpus))
    order = order[: data.draw(st.integers(1, len(order)))]
    batch_size = data.draw(st.integers(1, 12), label="batch size")
    workers = data.draw(st.integers(0, 2), label="workers")
    default_batch = tagger.batch_size
    tagger.batch_size = batch_size
    try:
        outcomes = list(tagger.tag_many(order, workers=workers, **WINDOWING))
    finally:
        tagger.batch_size = default_batch
    assert [o.source for o in outcomes] == order
    for outcome in outcomes:
        assert result_bytes(outcome) == plain[outcome.source], outcome.source


def dymn_tag_records(paths: list[str], output: Path, *options: str) -> dict[str, str]:
    args = [
        *paths,
        "-o",
        str(output),
        "--weights",
        str(GOLDEN / "dymn04_seed0.pt"),
        "--device",
        "cpu",
        "--window",
        "2",
        "--hop",
        "1",
        "--top",
        "all",
        "--timeline",
        *options,
    ]
    dymn_tag(args, timeout=SAFETY_NET, check=True)
    lines = output.read_text().splitlines()  # (records only: each carries its model and settings)
    return {json.loads(line)["path"]: line for line in lines}


@pytest.fixture(scope="module")
def plain_records(corpus, tmp_path_factory) -> dict[str, str]:
    return dymn_tag_records(corpus, tmp_path_factory.mktemp("plain") / "plain.jsonl")


@pytest.mark.slow
@settings(
    max_examples=2, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_dymn_tag_records_are_byte_identical_whatever_the_batching(corpus, plain_records, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("records")
    order = data.draw(st.permutations(corpus))
    first = data.draw(st.integers(1, len(order) - 1), label="files before the interruption")
    batch_size = str(data.draw(st.integers(1, 9), label="batch size"))
    workers = str(data.draw(st.integers(0, 2), label="workers"))
    # Part of the files, then --resume for the rest: they meet other files in their batches than in
    # the plain run, and other batch sizes.
    dymn_tag_records(order[:first], folder / "out.jsonl", "-b", batch_size, "-j", "0")
    records = dymn_tag_records(order, folder / "out.jsonl", "--resume", "-b", batch_size, "-j", workers)
    assert records == plain_records
