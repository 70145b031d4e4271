"""No input can crash a run or lose a result (#5): decode workers that die, and decode trouble.

A decode worker killed mid-file in a real `dymn-tag` run; in process, dying workers in the pipeline
(a segfaulting decoder, a job that kills each worker it reaches, workers that cannot start), a decode
error after some windows were batched, and decode warnings that become part of the result.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from dymn_cli import Tagger
from dymn_cli.audio.decode import AudioDecodeWarning
from dymn_cli.audio.windows import WindowGrid
from dymn_cli.inference.decode_stage import DecodeJob
from dymn_cli.inference.pipeline import Failure, WindowOutputs, run_pipeline
from dymn_cli.inference.worker_pool import DecoderCrashLoop, PipelineSettings
from dymn_cli.tagger import TagResult
from tests.audio_factory import make_audio_file, sine, truncate_file, write_audio
from tests.crash_sources import ExitOnArrival, SegfaultOnOpen, die_at_start
from tests.watched_runs import (
    FAST,
    RATE,
    jsonl,
    live_run,
    stderr_report,
    without_provenance,
    writing_end,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_a_decode_worker_killed_mid_file_fails_only_that_file(tmp_path):
    paths = [make_audio_file(tmp_path / f"a{i}.wav", seconds=0.3 + 0.1 * i, seed=i) for i in range(8)]
    stuck = tmp_path / "stuck.wav"
    os.mkfifo(stuck)
    paths.insert(3, stuck)
    target = tmp_path / "labels.jsonl"
    with live_run([*map(str, paths), *FAST, "--workers", "2", "-o", str(target)]) as run:
        with writing_end(stuck, run):
            worker = _process_reading(stuck, parent=run.proc.pid)
            os.kill(worker, signal.SIGKILL)  # as if its decoder had crashed on this file
        assert run.finish() == 1, run.lines
    records = jsonl(target)
    assert [r["path"] for r in records] == [str(p) for p in paths]
    for path, record in zip(paths, records):
        if path == stuck:
            assert without_provenance(record) == {"path": str(stuck), "error": f"{stuck}: decoder crashed (killed by SIGKILL)"}
        else:
            assert record["labels"], record
    lines, counts = stderr_report("\n".join(run.lines))
    assert lines == [f"dymn-tag: {stuck}: decoder crashed (killed by SIGKILL)"] and counts == (8, 1, 0)


def _process_reading(fifo: Path, *, parent: int, timeout: float = 30) -> int:
    """The child process of `parent` that has `fifo` open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in _children(parent):
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == str(fifo):
                        return pid
                except OSError:
                    pass
        time.sleep(0.02)
    raise AssertionError(f"no child of {parent} has {fifo} open")


def _children(pid: int) -> list[int]:
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            children += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return children


def _in_thread(fn, timeout: float = 120):
    """Run `fn` with a time limit, so that a hang fails the test instead of stopping the suite."""
    result: list = []
    raised: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as error:  # noqa: BLE001 - raised again below, in the test's thread
            raised.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout} s"
    if raised:
        raise raised[0]
    return result[0]


def _pipeline(tagger: Tagger, sources: list, *, workers: int) -> list:
    grid = WindowGrid.from_seconds(window=1.0, hop=0.5, sample_rate=RATE)
    jobs = (DecodeJob(i, s, name=str(s) if not isinstance(s, ExitOnArrival) else "arrival") for i, s in enumerate(sources))
    pipeline = PipelineSettings(grid=grid, batch_size=4, workers=workers)
    return _in_thread(lambda: list(run_pipeline(jobs, engine=tagger.engine, settings=pipeline)))


def _assert_same_windows(expected: list, got: list) -> None:
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        assert isinstance(b, WindowOutputs) and a.n_samples == b.n_samples
        np.testing.assert_allclose(a.logits, b.logits, atol=1e-4)


@pytest.mark.slow
def test_a_segfaulting_decoder_costs_only_its_job(tagger, tmp_path):
    good = [str(make_audio_file(tmp_path / f"g{i}.wav", seconds=0.5 + 0.5 * i, seed=i)) for i in range(6)]
    # two workers: the second takes job 1 (and holds job 3, not started), and dies on opening job 1
    sources: list = [good[0], SegfaultOnOpen("segfault.wav"), good[1], good[2], good[3], good[4], good[5]]
    pooled = _pipeline(tagger, sources, workers=2)
    assert [o.index for o in pooled] == list(range(len(sources)))
    assert isinstance(pooled[1], Failure) and pooled[1].reason == "segfault.wav: decoder crashed (killed by SIGSEGV)"
    _assert_same_windows(_pipeline(tagger, good, workers=0), [o for o in pooled if o.index != 1])


@pytest.mark.slow
def test_a_job_that_kills_workers_as_they_receive_it_fails_on_the_second_death(tagger, tmp_path):
    good = [str(make_audio_file(tmp_path / f"g{i}.wav", seconds=0.5, seed=i)) for i in range(3)]
    pooled = _pipeline(tagger, [ExitOnArrival(), *good], workers=1)
    assert isinstance(pooled[0], Failure) and pooled[0].reason == "arrival: decoder crashed (exit code 3)"
    _assert_same_windows(_pipeline(tagger, good, workers=0), pooled[1:])


@pytest.mark.slow
def test_workers_that_cannot_start_stop_the_run_with_one_clear_error(tagger, tmp_path, monkeypatch):
    """Not an endless round of restarts, each input failing with "decoder crashed"."""
    import dymn_cli.inference.worker_pool

    monkeypatch.setattr(dymn_cli.inference.worker_pool, "decode_worker", die_at_start)
    good = [str(make_audio_file(tmp_path / f"g{i}.wav", seconds=0.5, seed=i)) for i in range(6)]
    started = time.monotonic()
    with pytest.raises(DecoderCrashLoop, match=r"keep dying before they send anything \(exit code 255\); --workers 0"):
        _pipeline(tagger, good, workers=2)
    assert time.monotonic() - started < 60


def test_a_decode_error_after_windows_were_batched_fails_only_that_input(tagger, tmp_path):
    wave = sine(1.5, RATE, 1, freq=440.0).astype(np.float32)
    wave[int(1.2 * RATE)] = np.nan  # found in the fifth 0.25 s block, after four windows were cut
    nan = write_audio(tmp_path / "late_nan.wav", wave, RATE, subtype="FLOAT")
    good = make_audio_file(tmp_path / "good.wav", seconds=1.0)
    grid = WindowGrid.from_seconds(window=0.25, hop=0.25, sample_rate=RATE)
    pipeline = PipelineSettings(grid=grid, batch_size=64, workers=0, block_seconds=0.25)
    jobs = [DecodeJob(0, str(nan), name=str(nan)), DecodeJob(1, str(good), name=str(good))]
    outcomes = list(run_pipeline(jobs, engine=tagger.engine, settings=pipeline))
    assert isinstance(outcomes[0], Failure) and "NaN or infinite" in outcomes[0].reason
    assert isinstance(outcomes[1], WindowOutputs) and len(outcomes[1].logits) == 4


@pytest.mark.parametrize("workers", [0, 1])
def test_decode_warnings_become_part_of_the_result(tagger, tmp_path, workers):
    damaged = truncate_file(make_audio_file(tmp_path / "damaged.flac", seconds=1.0), 0.5)
    intact = make_audio_file(tmp_path / "intact.flac", seconds=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioDecodeWarning)  # none may escape as a Python warning
        outcomes = list(tagger.tag_many([str(damaged), str(intact)], window=1.0, hop=1.0, workers=workers))
    assert [type(o) for o in outcomes] == [TagResult, TagResult]
    assert len(outcomes[0].warnings) == 1
    assert outcomes[0].warnings[0].startswith("decoding stopped after 0.") and str(damaged) not in outcomes[0].warnings[0]
    assert outcomes[1].warnings == []
