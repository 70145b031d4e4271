"""The inference stage: CPU lanes, and how the pipeline fills batches from decode workers."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile
import torch

from dymn_cli.audio.windows import WindowGrid
from dymn_cli.errors import UsageError
from dymn_cli.inference.decode_stage import DecodeJob
from dymn_cli.inference.engine import InferenceEngine
from dymn_cli.inference.pipeline import WindowOutputs, run_pipeline
from dymn_cli.inference.worker_pool import PipelineSettings
from dymn_cli.models.build import build_model
from tests.support import GOLDEN


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model(torch.load(GOLDEN / "dymn04_seed0.pt"))


def test_lanes_give_the_same_outputs_and_leave_the_callers_threads_alone(model, frontend_golden):
    waves = [frontend_golden["waves"][k].numpy() for k in sorted(frontend_golden["waves"])]
    windows = np.stack(waves + waves[:2])  # the golden 10 s windows, on which this checkpoint is calibrated
    threads = torch.get_num_threads()
    one = InferenceEngine(model, device="cpu", lanes=1)
    three = InferenceEngine(model, device="cpu", lanes=3)
    assert torch.get_num_threads() == threads
    assert three._pool is not None and set(three._pool.map(lambda _: torch.get_num_threads(), range(6))) == {1}
    for batch in (windows, windows[:1], windows[:2]):  # more windows than lanes, one, fewer
        logits, embeddings = three(batch)
        expected_logits, expected_embeddings = one(batch)
        assert logits.shape == (len(batch), 527) and embeddings.shape == (len(batch), 384)
        # (One thread or several sum in different orders: float32 rounding, far inside the golden 1e-3.)
        np.testing.assert_allclose(logits, expected_logits, rtol=0, atol=2e-4)
        np.testing.assert_allclose(embeddings, expected_embeddings, rtol=0, atol=2e-4)


def test_lane_count_must_be_positive(model):
    with pytest.raises(UsageError, match="lanes must be at least 1"):
        InferenceEngine(model, device="cpu", lanes=0)


class SlowEngine(InferenceEngine):
    """A real engine that takes 50 ms longer per batch and notes the batch sizes: the decode worker is
    then always ahead of it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batch_sizes: list[int] = []

    def __call__(self, waveforms):
        self.batch_sizes.append(len(waveforms))
        time.sleep(0.05)
        return super().__call__(waveforms)


@pytest.mark.slow
def test_windows_a_worker_has_queued_make_full_batches(model, tmp_path):
    """A partial batch runs only while the workers are still decoding, not while a window they have
    already decoded is on its way (waiting for the worker's sending thread to be scheduled)."""
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.wav")
        soundfile.write(paths[-1], np.random.default_rng(i).standard_normal(6 * 32_000).astype(np.float32) * 0.1, 32_000)
    engine = SlowEngine(model, device="cpu")
    settings = PipelineSettings(grid=WindowGrid.from_seconds(window=1.0, hop=1.0, sample_rate=32_000), batch_size=4, workers=1)
    outcomes = list(run_pipeline([DecodeJob(i, str(p)) for i, p in enumerate(paths)], engine=engine, settings=settings))
    assert [type(o) for o in outcomes] == [WindowOutputs] * 3 and all(len(o.logits) == 6 for o in outcomes)
    sizes = engine.batch_sizes
    assert sum(sizes) == 18
    # (The very first batch may run before the worker has queued more than a window or two.)
    assert sizes[1:-1] == [4] * (len(sizes) - 2) and len(sizes) <= 6, sizes
