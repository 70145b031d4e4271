"""The streaming pipeline with a stand-in network: every input's outcome, in input order, whatever
the batches mixed; a failure stays with its input; typed messages from the decode stage."""

from __future__ import annotations

import numpy as np
import pytest

from dymn_cli.audio.windows import WindowGrid
from dymn_cli.errors import UsageError
from dymn_cli.inference.decode_stage import DecodeJob, DoneMessage, ErrorMessage, WindowMessage, decode_job
from dymn_cli.inference.pipeline import Failure, PendingInput, PipelineStats, WindowOutputs, run_pipeline
from dymn_cli.inference.worker_pool import PipelineSettings, start_decoding
from tests.audio_factory import make_audio_file

RATE = 32_000
GRID = WindowGrid(window=RATE // 2, hop=RATE // 4)  # 0.5 s windows every 0.25 s


class FakeNetwork:
    """Logits that identify each window (its first and last samples and its mean), and the batches seen."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.batches.append(len(windows))
        logits = np.stack([windows[:, 0], windows[:, -1], windows.mean(axis=1)], axis=1)
        return logits, windows[:, :2].copy()


def waveform(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, int(seconds * RATE)).astype(np.float32)


def run(sources, *, batch_size: int = 3, workers: int = 0, engine=None):
    jobs = [DecodeJob(n, source, name=f"input-{n}") for n, source in enumerate(sources)]
    settings = PipelineSettings(grid=GRID, batch_size=batch_size, workers=workers, sample_rate=RATE)
    return list(run_pipeline(jobs, engine=engine or FakeNetwork(), settings=settings))


def expected_logits(samples: np.ndarray) -> np.ndarray:
    windows = GRID.cut(samples)
    return np.stack([windows[:, 0], windows[:, -1], windows.mean(axis=1)], axis=1)


def test_outcomes_come_in_input_order_with_each_inputs_own_windows():
    sources = [waveform(s, seed) for seed, s in enumerate((1.3, 0.1, 2.0, 0.6))]
    network = FakeNetwork()
    outcomes = run(sources, batch_size=3, engine=network)
    assert [o.index for o in outcomes] == [0, 1, 2, 3]
    for source, outcome in zip(sources, outcomes):
        assert isinstance(outcome, WindowOutputs) and outcome.n_samples == len(source)
        np.testing.assert_array_equal(outcome.logits, expected_logits(source))
    assert max(network.batches) == 3 and sum(network.batches) == sum(GRID.count(len(s)) for s in sources)


def test_a_failing_input_is_a_failure_in_its_place_and_the_others_go_on(tmp_path):
    good = make_audio_file(tmp_path / "good.wav", seconds=1.0)
    outcomes = run([str(good), str(tmp_path / "missing.wav"), str(good)])
    assert isinstance(outcomes[0], WindowOutputs) and isinstance(outcomes[2], WindowOutputs)
    assert isinstance(outcomes[1], Failure) and outcomes[1].index == 1
    assert outcomes[1].reason == "input-1: file not found"  # named as its job names it
    np.testing.assert_array_equal(outcomes[0].logits, outcomes[2].logits)


def test_a_window_the_network_cannot_score_fails_only_its_input():
    def network(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = np.where(windows[:, :1] > 0.5, np.nan, 0.0) * np.ones((1, 3))
        return logits, np.zeros((len(windows), 2))

    quiet, loud = np.zeros(RATE, np.float32), np.ones(RATE, np.float32)
    outcomes = run([quiet, loud, quiet], engine=network)
    assert [type(o) for o in outcomes] == [WindowOutputs, Failure, WindowOutputs]
    assert "not a number" in outcomes[1].reason


@pytest.mark.slow
def test_worker_processes_give_the_same_outcomes_as_decoding_in_process(tmp_path):
    files = [str(make_audio_file(tmp_path / f"{n}.wav", seconds=0.4 + n / 3, seed=n)) for n in range(5)]
    inline, pooled = run(files, workers=0), run(files, workers=2)
    for a, b in zip(inline, pooled):
        assert a.index == b.index and a.n_samples == b.n_samples
        np.testing.assert_array_equal(a.logits, b.logits)


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(UsageError, match="batch size must be at least 1"):
        run([waveform(1, 0)], batch_size=0)
    started = start_decoding([DecodeJob(0, waveform(1, 0))], PipelineSettings(grid=WindowGrid(RATE, RATE), sample_rate=RATE))
    settings = PipelineSettings(grid=GRID, sample_rate=RATE)
    with pytest.raises(ValueError, match="another window grid"):
        list(run_pipeline(started, engine=FakeNetwork(), settings=settings))


def test_stats_count_batches_and_windows():
    stats = PipelineStats()
    jobs = [DecodeJob(0, waveform(1.0, 0))]
    list(
        run_pipeline(
            jobs, engine=FakeNetwork(), settings=PipelineSettings(grid=GRID, batch_size=2, sample_rate=RATE), stats=stats
        )
    )
    assert stats.windows == GRID.count(RATE) and stats.batches == -(-stats.windows // 2)


def test_the_decode_stage_speaks_in_typed_messages(tmp_path):
    samples = waveform(1.1, 3)
    messages = list(decode_job(DecodeJob(7, samples), grid=GRID, sample_rate=RATE, block_seconds=60))
    windows, done = messages[:-1], messages[-1]
    assert all(isinstance(m, WindowMessage) and m.index == 7 for m in windows)
    assert [m.window_index for m in windows] == list(range(GRID.count(len(samples))))
    assert done == DoneMessage(7, GRID.count(len(samples)), len(samples))
    failed = list(decode_job(DecodeJob(8, str(tmp_path / "gone.wav")), grid=GRID, sample_rate=RATE, block_seconds=60))
    assert len(failed) == 1 and isinstance(failed[0], ErrorMessage) and failed[0].index == 8


def test_a_pending_input_gives_its_windows_in_order_once_complete():
    state = PendingInput(expected=2, n_samples=10)
    state.windows[1] = (np.array([1.0]), np.array([10.0]))
    assert not state.complete()
    state.windows[0] = (np.array([0.0]), np.array([0.0]))
    outcome = state.outcome(4)
    assert state.complete() and outcome.index == 4 and outcome.logits.tolist() == [[0.0], [1.0]]
    assert PendingInput(failure="x: broken").outcome(5) == Failure(5, "x: broken")
