"""The Python API end to end on the golden waveforms: windows, padding, batching, aggregation."""

import numpy as np
import pytest
import torch

from dymn_cli import Tagger
from dymn_cli.errors import AudioError, UsageError

PROB_TOL = 2e-4
EMB_TOL = 1e-3


@pytest.fixture(scope="module")
def tagger(golden_dir):
    return Tagger(weights=golden_dir / "dymn04_seed0.pt", device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def cases(golden_dir):
    return torch.load(golden_dir / "dymn04_cases.pt")


def test_windows_w10_h2_5_match_golden(tagger, cases, frontend_golden):
    case = cases["f32_windows_w10_h2.5"]
    result = tagger.tag(frontend_golden["long_23.7s"].numpy(), sample_rate=32_000, window=10.0, hop=2.5)
    np.testing.assert_allclose(result.starts, case["starts"].numpy())
    np.testing.assert_allclose(result.ends, case["ends"].numpy())
    assert np.abs(result.window_scores - case["probs"].numpy()).max() < PROB_TOL
    assert np.abs(result.embeddings - case["embeddings"].numpy()).max() < EMB_TOL
    np.testing.assert_allclose(result.scores, result.window_scores.mean(axis=0), rtol=1e-6)
    assert result.duration == pytest.approx(23.7)


def test_short_input_is_padded_to_one_window(tagger, cases, frontend_golden):
    case = cases["f32_short_padded"]
    result = tagger.tag(frontend_golden["short_3.3s"], sample_rate=32_000)
    assert len(result.starts) == 1 and result.ends[0] == 10.0
    assert np.abs(result.window_scores[0] - torch.sigmoid(case["logits"][0]).numpy()).max() < PROB_TOL
    assert np.abs(result.embeddings[0] - case["embedding"][0].numpy()).max() < EMB_TOL


def test_tag_file_equals_tag_array(tagger, tmp_path, frontend_golden):
    import soundfile

    wave = frontend_golden["long_23.7s"].numpy()
    path = tmp_path / "long.wav"
    soundfile.write(path, wave, 32_000, subtype="FLOAT")
    from_file = tagger.tag(str(path), hop=5.0)
    from_array = tagger.tag(wave, sample_rate=32_000, hop=5.0)
    np.testing.assert_array_equal(from_file.window_scores, from_array.window_scores)
    assert from_file.source == str(path)


def test_batch_size_does_not_change_results(golden_dir, frontend_golden):
    wave = frontend_golden["long_23.7s"].numpy()
    one = Tagger(weights=golden_dir / "dymn04_seed0.pt", device="cpu", batch_size=1).tag(wave, sample_rate=32_000, hop=2.5)
    many = Tagger(weights=golden_dir / "dymn04_seed0.pt", device="cpu", batch_size=7).tag(wave, sample_rate=32_000, hop=2.5)
    np.testing.assert_array_equal(one.window_scores, many.window_scores)  # (bitwise: tests/inference/test_batch_invariance.py)
    np.testing.assert_array_equal(one.embeddings, many.embeddings)


def test_max_aggregate_and_top(tagger, frontend_golden):
    result = tagger.tag(frontend_golden["long_23.7s"], sample_rate=32_000, hop=2.5, aggregate="max")
    np.testing.assert_array_equal(result.scores, result.window_scores.max(axis=0))
    top = result.top(5)
    assert len(top) == 5
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    assert top[0][1] == pytest.approx(float(result.scores.max()))
    assert top[0][0] == result.classes[int(np.argmax(result.scores))].name


def test_tag_many_isolates_bad_inputs_and_keeps_order(tagger, tmp_path, frontend_golden):
    import soundfile

    good = tmp_path / "good.wav"
    soundfile.write(good, frontend_golden["short_3.3s"].numpy(), 32_000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    outcomes = list(tagger.tag_many([str(good), str(bad), str(good) + ".missing", str(good)]))
    assert [type(o).__name__ for o in outcomes] == ["TagResult", "TagFailure", "TagFailure", "TagResult"]
    assert "bad.wav" in outcomes[1].reason
    np.testing.assert_array_equal(outcomes[0].scores, outcomes[3].scores)


@pytest.mark.slow
def test_tag_many_with_worker_processes_equals_inline(tagger, tmp_path, frontend_golden):
    import soundfile

    paths = []
    for i, length in enumerate([105_600, 758_400, 320_000, 1]):
        path = tmp_path / f"f{i}.wav"
        soundfile.write(path, frontend_golden["long_23.7s"].numpy()[:length], 32_000, subtype="FLOAT")
        paths.append(str(path))
    inline = list(tagger.tag_many(paths, hop=5.0))
    pooled = list(tagger.tag_many(paths, hop=5.0, workers=2))
    assert [r.source for r in pooled] == paths
    for a, b in zip(inline, pooled):
        np.testing.assert_allclose(a.window_scores, b.window_scores, atol=1e-6)


def test_embed_is_mean_of_window_embeddings(tagger, frontend_golden):
    wave = frontend_golden["long_23.7s"]
    result = tagger.tag(wave, sample_rate=32_000)
    np.testing.assert_allclose(tagger.embed(wave, sample_rate=32_000), result.embeddings.mean(axis=0), rtol=1e-6)
    assert result.embedding.shape == (384,)


def test_errors(tagger):
    with pytest.raises(UsageError):
        tagger.tag(np.zeros(100, dtype=np.float32))  # no sample rate
    with pytest.raises(UsageError):
        tagger.tag(np.zeros(100, dtype=np.float32), sample_rate=32_000, aggregate="median")
    with pytest.raises(AudioError):
        tagger.tag(b"\x00\x01garbage")


def test_default_batch_gives_every_cpu_lane_eight_windows(golden_dir):
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        default = Tagger(weights=golden_dir / "dymn04_seed0.pt", device="cpu")
        explicit = Tagger(weights=golden_dir / "dymn04_seed0.pt", device="cpu", batch_size=5)
    finally:
        torch.set_num_threads(threads)
    assert default.engine.lanes in (1, 3)  # (1 where torch's threads are not OpenMP's)
    assert default.batch_size == 8 * default.engine.lanes
    assert explicit.batch_size == 5


def test_a_window_given_alone_hops_by_itself(golden_dir):
    """`tag(window=2)` windows every 2 s: the default hop (10 s) would leave 8 s of every 10 untagged."""
    tagger = Tagger(weights=golden_dir / "dymn04_seed0.pt", device="cpu")
    wave = np.random.default_rng(3).normal(0, 0.1, 7 * 32_000).astype(np.float32)
    result = tagger.tag(wave, sample_rate=32_000, window=2.0)
    assert [round(float(s), 6) for s in result.starts] == [0.0, 2.0, 4.0, 6.0]
    assert [round(float(s), 6) for s in tagger.tag(wave, sample_rate=32_000, window=2.0, hop=3.0).starts] == [
        0.0,
        3.0,
        6.0,
    ]
