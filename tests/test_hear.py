"""The HEAR 2021 API (`dymn_cli.hear`): the contract hear-validator checks, and more: the golden
numbers, window centring, batch independence, devices, and bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dymn_cli import hear
from dymn_cli.errors import DymnError, UsageError, WeightsError

RATE = 32_000
TOL = 1e-3  # (the golden README's float32 tolerance for logits and embeddings)


@pytest.fixture(scope="module")
def model(golden_dir):
    return hear.load_model(str(golden_dir / "dymn04_seed0.pt"))


@pytest.fixture(scope="module")
def cases(golden_dir):
    return torch.load(golden_dir / "dymn04_cases.pt")


def noise(n: int, seconds: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((n, int(seconds * RATE)), generator=generator) * 2 - 1


def test_attributes(model):
    assert model.sample_rate == 32_000 and isinstance(model, torch.nn.Module)
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
    assert model.scene_embedding_size == model.timestamp_embedding_size == 527 + 384  # logits + dymn04's features
    assert (model.timestamp_window, model.timestamp_hop) == (5120, 1600)


@pytest.mark.parametrize(("n", "seconds"), [(2, 1.07), (1, 0.33)])  # (no whole number of hops)
def test_timestamp_embeddings_shapes_and_evenly_spaced_centred_times(model, n, seconds):
    audio = noise(n, seconds)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    count = audio.shape[1] // 1600 + 1
    assert embeddings.dtype == torch.float32 and timestamps.dtype == torch.float32
    assert embeddings.shape == (n, count, model.timestamp_embedding_size)
    assert timestamps.shape == (n, count)
    steps = torch.diff(timestamps.double(), dim=1)
    assert torch.all(steps == 50.0)
    assert timestamps[0, 0] == 0.0 and timestamps[0, -1] <= 1000 * seconds < timestamps[0, -1] + 50
    assert torch.isfinite(embeddings).all()


def test_timestamp_embedding_is_its_centred_window(model):
    """The embedding at t ms is the scene embedding of the 160 ms of audio centred on t (zero-padded)."""
    audio = noise(1, 0.4, seed=1)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    padded = torch.nn.functional.pad(audio, (2560, 2560))
    for k in (0, 5, len(timestamps[0]) - 1):
        centre = round(float(timestamps[0, k]) * RATE / 1000)
        window = padded[:, centre : centre + 5120]  # (centre - 2560 .. centre + 2560 in the clip)
        torch.testing.assert_close(embeddings[0, k], hear.get_scene_embeddings(window, model)[0], rtol=0, atol=0)


def test_scene_embedding_is_the_models_logits_and_embedding(model, cases, frontend_golden):
    """A 10 s clip is one pass: the authors' own logits and embedding (golden, float32) side by side."""
    waves = torch.stack([frontend_golden["waves"][f"wave{i}_10s"] for i in range(3)])
    scene = hear.get_scene_embeddings(waves, model)
    expected = torch.cat([cases["f32_T1000"]["logits"], cases["f32_T1000"]["embedding"]], dim=1)
    assert scene.shape == (3, 911) and scene.dtype == torch.float32
    torch.testing.assert_close(scene, expected, rtol=0, atol=TOL)


def test_long_scene_is_the_mean_of_10s_windows_ending_at_the_end(model, frontend_golden):
    wave = frontend_golden["long_23.7s"][None]  # windows start at 0, 5, 10 and 13.7 s
    scene = hear.get_scene_embeddings(wave, model)
    starts = [0, 5 * RATE, 10 * RATE, wave.shape[1] - 10 * RATE]
    windows = torch.cat([wave[:, s : s + 10 * RATE] for s in starts])
    torch.testing.assert_close(scene[0], hear.get_scene_embeddings(windows, model).mean(dim=0), rtol=1e-6, atol=1e-6)


def test_batch_independence(model):
    """A clip alone and in a batch of others gets the same embeddings, bit for bit."""
    batch = noise(3, 0.5, seed=2)
    batch[0] *= 0.01  # (clips of different loudness and content side by side)
    together, times_together = hear.get_timestamp_embeddings(batch, model)
    scene_together = hear.get_scene_embeddings(batch, model)
    for i in range(3):
        alone, times_alone = hear.get_timestamp_embeddings(batch[i : i + 1], model)
        torch.testing.assert_close(alone[0], together[i], rtol=0, atol=0)
        torch.testing.assert_close(times_alone[0], times_together[i], rtol=0, atol=0)
        torch.testing.assert_close(hear.get_scene_embeddings(batch[i : i + 1], model)[0], scene_together[i], rtol=0, atol=0)


def test_batch_size_does_not_change_embeddings(model):
    audio = noise(2, 0.2, seed=3)
    outputs = []
    try:
        for batch_size in (1, 64):
            model.batch_size = batch_size
            outputs.append(hear.get_timestamp_embeddings(audio, model)[0])
    finally:
        model.batch_size = None
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_outputs_on_the_models_device(model):
    audio = noise(1, 0.3)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.device == timestamps.device == model.device == torch.device("cpu")
    assert hear.get_scene_embeddings(audio, model).device == model.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_moved_to_cuda_embeds_on_cuda(golden_dir):
    model = hear.load_model(str(golden_dir / "dymn04_seed0.pt")).to("cuda")
    audio = noise(2, 0.5).to("cuda")
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.device.type == timestamps.device.type == "cuda"
    assert hear.get_scene_embeddings(audio, model).device.type == "cuda"


def test_short_and_empty_clips(model):
    click = noise(2, 0.02)  # (shorter than the 9 log-mel frames the network takes: zero-padded)
    assert hear.get_scene_embeddings(click, model).shape == (2, 911)
    embeddings, timestamps = hear.get_timestamp_embeddings(torch.zeros((2, 0)), model)
    assert embeddings.shape == (2, 1, 911) and timestamps.tolist() == [[0.0], [0.0]]
    embeddings, timestamps = hear.get_timestamp_embeddings(torch.zeros((0, 3200)), model)
    assert embeddings.shape == (0, 3, 911) and timestamps.shape == (0, 3)


def test_other_dtypes_and_numpy_arrays_are_taken(model):
    audio = noise(1, 0.3)
    expected = hear.get_scene_embeddings(audio, model)
    torch.testing.assert_close(hear.get_scene_embeddings(audio.double(), model), expected, rtol=0, atol=0)
    torch.testing.assert_close(hear.get_scene_embeddings(audio.numpy(), model), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (torch.zeros(3200), re.escape("got shape [3200]")),
        (torch.zeros((1, 1, 3200)), re.escape("got shape [1, 1, 3200]")),
        (torch.zeros((1, 3200), dtype=torch.int16), "floating-point"),
        (torch.full((1, 3200), float("nan")), "NaN or infinite"),
        ([[0.0] * 3200], "got list"),
    ],
)
def test_bad_audio_is_one_clear_error(model, audio, message):
    for function in (hear.get_scene_embeddings, hear.get_timestamp_embeddings):
        with pytest.raises(UsageError, match=message):
            function(audio, model)


def test_load_model_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown model 'dymn11_as'; did you mean"):
        hear.load_model("dymn11_as")
    with pytest.raises(WeightsError, match="not found"):
        hear.load_model(str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError):
        hear.load_model(str(junk))
    with pytest.raises(UsageError, match="hop must be at least"):
        hear.load_model(str(tmp_path / "missing.pt"), timestamp_hop=0.001)


def test_default_model_is_dymn10_as():
    """No weights here: the default asks for dymn10_as's file (the tests' release URL is unreachable)."""
    with pytest.raises(DymnError, match="dymn_10_as|dymn10_as"):
        hear.load_model()


def test_timestamps_stay_exact_over_long_audio(golden_dir):
    """Timestamps are computed from their index, not accumulated: no drift (a cheap 1 s hop here)."""
    model = hear.load_model(str(golden_dir / "dymn04_seed0.pt"), timestamp_window=0.1, timestamp_hop=1.0)
    _, timestamps = hear.get_timestamp_embeddings(torch.zeros((1, 30 * RATE + 7)), model)
    np.testing.assert_array_equal(timestamps[0].numpy(), np.arange(31) * 1000.0)
