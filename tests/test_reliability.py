"""No input can crash a run or lose a result (#5).

Most cases run the real `dymn-tag` as a subprocess with the golden DyMN-0.4 checkpoint, short
audio and 1-second windows: one run over a folder of awkward and broken inputs, an unreadable file
and folder (file modes enforced even for root), a file deleted mid-run, a decode worker killed
mid-file, SIGINT / SIGTERM / SIGKILL in the middle of a run and `--resume` after each, code-running
weights, and 200 files of which a quarter are bad. In process: dying workers in the pipeline, decode warnings, a
decode error after some windows were batched, and a property-based fuzz of the decode-and-tag path.

A FIFO named like an audio file is how these tests hold a run at a known point: the process that
opens it blocks until the test opens the other end (or forever), and every input before it is done.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dymn_cli import Tagger
from dymn_cli.audio.decode import AudioDecodeWarning
from dymn_cli.audio.windows import WindowGrid
from dymn_cli.errors import AudioError
from dymn_cli.inference.decode_stage import DecodeJob
from dymn_cli.inference.pipeline import Failure, WindowOutputs, run_pipeline
from dymn_cli.inference.worker_pool import DecoderCrashLoop, PipelineSettings
from dymn_cli.run.runner import RunSettings, label_inputs
from dymn_cli.tagger import TagFailure, TagResult
from dymn_cli.writers.base import OutputOptions
from tests.audio_factory import make_audio_file, random_bytes_file, sine, truncate_file, write_audio
from tests.crash_sources import ExitOnArrival, SegfaultOnOpen, die_at_start
from tests.permissions import mode_respecting_prefix
from tests.support import DYMN04_WEIGHTS, DYMN_TAG, dymn_tag

WEIGHTS = str(DYMN04_WEIGHTS)
FAST = ["--weights", WEIGHTS, "--device", "cpu", "--window", "1", "--hop", "1", "--top", "3"]
SUMMARY = re.compile(r"^dymn-tag: (\d+) tagged, (\d+) failed(?:, (\d+) skipped)?, \d+:\d\d:\d\d of audio in \d+:\d\d:\d\d")
RATE = 32_000

PROVENANCE = ("model", "settings")
"""What every JSON Lines record carries besides its outcome (dymn_cli.writers.formats.json_lines)."""


def without_provenance(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in PROVENANCE}


# --------------------------------------------------------------------------- helpers


def jsonl(path: Path) -> list[dict]:
    """The input records of a JSONL output (every line)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert all("path" in r for r in records)
    return records


def one_line(path: str) -> str:
    """How stderr shows a path (a newline in a name would break the one-line-per-input rule)."""
    return path.replace("\\", "\\\\").replace("\n", "\\n")


def stderr_report(stderr: str) -> tuple[list[str], tuple[int, int, int]]:
    """The lines before the summary, and the summary's (tagged, failed, skipped); the summary must be last."""
    lines = stderr.splitlines()
    assert lines, "no summary line"
    found = SUMMARY.match(lines[-1])
    assert found, f"the last stderr line is not the summary: {lines[-1]!r}"
    return lines[:-1], (int(found[1]), int(found[2]), int(found[3] or 0))


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


class LiveRun:
    """A `dymn-tag` subprocess whose stderr lines are collected as they come."""

    def __init__(self, args: list[str], **kwargs) -> None:
        self.proc = subprocess.Popen(
            [DYMN_TAG, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            **kwargs,
        )
        self.lines: list[str] = []
        self.stdout = b""
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()

    def _read_stdout(self) -> None:
        self.stdout = self.proc.stdout.read()

    def wait_for_line(self, needle: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(needle in line for line in self.lines):
                assert self.proc.poll() is None, f"dymn-tag ended ({self.proc.returncode}) first: {self.lines}"
                assert time.monotonic() < deadline, f"no stderr line with {needle!r}: {self.lines}"
                self._changed.wait(0.1)

    def finish(self, timeout: float = 90) -> int:
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


@contextmanager
def live_run(args: list[str], **kwargs) -> Iterator[LiveRun]:
    run = LiveRun(args, **kwargs)
    try:
        yield run
    finally:
        run.kill()  # (only if a check failed while it was still going)


@contextmanager
def writing_end(fifo: Path, run: LiveRun, timeout: float = 90) -> Iterator[int]:
    """Open the FIFO for writing as soon as the run has opened it for reading (then it is in the run)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as error:
            if error.errno != errno.ENXIO:
                raise
            assert run.proc.poll() is None, f"dymn-tag ended ({run.proc.returncode}) first: {run.lines}"
            assert time.monotonic() < deadline, "the run never opened the FIFO"
            time.sleep(0.02)
    os.set_blocking(fd, True)
    try:
        yield fd
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def wav_bytes(tmp: Path, **kwargs) -> bytes:
    return make_audio_file(tmp / "scratch.wav", **kwargs).read_bytes()


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    """One torch thread per process, here and in the `dymn-tag` runs: these tests run several processes
    at once on few cores, where OpenMP threads spin-waiting for each other cost ten times over (the
    200-file run: 3 s with one thread each, 40 to 60 s with two on a loaded 2-core machine)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    """The model as the CLI builds it from `--weights` (batch size 1: results do not depend on batching)."""
    return Tagger(None, weights=[WEIGHTS], device="cpu", batch_size=1)


# --------------------------------------------------------------------------- one run over a folder of awkward inputs


def _build_corpus(root: Path, outside: Path) -> tuple[dict[str, tuple[str, str]], Path]:
    """Every case, and what a user expects of it: ("ok", ""), ("warning", text) or ("error", text)."""
    root.mkdir()
    expect: dict[str, tuple[str, str]] = {}

    def case(name: str, outcome: str, text: str = "") -> Path:
        expect[str(root / name)] = (outcome, text)
        return root / name

    case("empty.wav", "error", "empty file (0 bytes)").write_bytes(b"")
    # cut mid-frame: 16-bit stereo frames are 4 bytes; the header promises more than the file holds
    wav = make_audio_file(case("truncated.wav", "ok"), seconds=1.0, sample_rate=44_100, channels=2)
    wav.write_bytes(wav.read_bytes()[: 44 + 4 * 22_050 + 3])
    truncate_file(make_audio_file(case("truncated.flac", "warning", "decoding stopped after"), seconds=1.0), 0.5)
    mp3 = make_audio_file(case("truncated.mp3", "ok"), seconds=1.0, sample_rate=44_100)
    mp3.write_bytes(mp3.read_bytes()[: len(mp3.read_bytes()) // 2 + 1])
    random_bytes_file(case("random.wav", "error", "not a readable audio file"), 4096)
    case("text.mp3", "error", "not a readable audio file").write_text("ID3? no: just some words\n" * 40)
    (root / "folder.wav").mkdir()  # a folder named like audio is walked like any folder
    make_audio_file(case("folder.wav/inner.wav", "ok"), seconds=0.4)
    (root / "loop").mkdir()
    (root / "loop" / "up").symlink_to("..")  # a folder link loop: walked once
    make_audio_file(case("loop/in_loop.wav", "ok"), seconds=0.4)
    os.symlink("self.wav", case("self.wav", "error", "Too many levels of symbolic links"))
    make_audio_file(case("silence.wav", "ok"), kind="silence", seconds=0.5)
    write_audio(case("one_sample.wav", "ok"), np.array([[0.25]]), RATE)
    for rate in (8_000, 96_000, 192_000):
        make_audio_file(case(f"rate_{rate // 1000}k.wav", "ok"), seconds=0.5, sample_rate=rate)
    make_audio_file(case("six_channels.wav", "ok"), seconds=0.5, sample_rate=48_000, channels=6)
    tone = sine(0.5, RATE, 1, freq=660.0)
    for name, subtype in (("int16.wav", "PCM_16"), ("int24.wav", "PCM_24"), ("float64.wav", "DOUBLE")):
        write_audio(case(name, "ok"), tone, RATE, subtype=subtype)
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        broken = tone.astype(np.float32).copy()
        broken[100] = value
        write_audio(case(name, "error", "contains NaN or infinite samples"), broken, RATE, subtype="FLOAT")
    for name in ("with space.wav", "ünïcödé 音.wav", "new\nline.wav"):
        make_audio_file(case(name, "ok"), seconds=0.4, seed=3)
    random_bytes_file(case("bad\nname.wav", "error", "not a readable audio file"), 2048)
    # listed in --files-from, then deleted before the run reaches it
    gone = make_audio_file(outside / "gone.wav", seconds=0.4)
    expect[str(gone)] = ("error", "file not found")
    listing = outside / "list.txt"
    listing.write_text(f"{gone}\n")
    gone.unlink()
    return expect, listing


@pytest.mark.slow
def test_a_folder_of_awkward_inputs_gives_one_clear_outcome_each(tmp_path):
    expect, listing = _build_corpus(tmp_path / "corpus", tmp_path)
    root = tmp_path / "corpus"
    target = tmp_path / "labels.jsonl"
    twice = str(root / "int16.wav")  # also found by the walk: each path once
    done = dymn_tag([str(root), twice, twice, "--files-from", str(listing), *FAST, "--workers", "2", "-o", str(target)])
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert done.stdout == b""
    records = jsonl(target)
    assert sorted(r["path"] for r in records) == sorted(expect), "each input exactly once, nothing else"
    by_path = {r["path"]: r for r in records}
    for path, (outcome, text) in expect.items():
        record = by_path[path]
        if outcome == "error":
            assert set(record) == {"path", "error", *PROVENANCE} and text in record["error"], (path, record)
            assert "\n" not in record["error"].replace(path, "")
        else:
            assert record["labels"] and record["n_windows"] >= 1 and record["duration"] > 0, (path, record)
            assert all(0.0 <= label["score"] <= 1.0 for label in record["labels"])
            assert ("warnings" in record) == (outcome == "warning"), (path, record)
            if outcome == "warning":
                assert len(record["warnings"]) == 1 and text in record["warnings"][0]

    # stderr: one line per failed input, one per damaged-but-tagged input, the summary last; no Python
    # warnings, tracebacks or decoder chatter (mpg123 notes on the text "mp3")
    lines, (tagged, failed, skipped) = stderr_report(stderr)
    errors = [p for p, (o, _) in expect.items() if o == "error"]
    warned = [p for p, (o, _) in expect.items() if o == "warning"]
    assert (tagged, failed, skipped) == (len(expect) - len(errors), len(errors), 0)
    assert len(lines) == len(errors) + len(warned), lines
    for path in errors:
        assert sum(line.startswith(f"dymn-tag: {one_line(path)}: ") for line in lines) == 1, (path, lines)
    for path in warned:
        assert [line for line in lines if line.startswith(f"dymn-tag: {one_line(path)}: warning: ")], lines

    # what the network saw is what the file holds, whatever the rate, width or channel count
    assert by_path[str(root / "one_sample.wav")]["duration"] == round(1 / RATE, 6)
    for name in ("rate_8k.wav", "rate_96k.wav", "rate_192k.wav", "six_channels.wav"):
        assert by_path[str(root / name)]["duration"] == pytest.approx(0.5, abs=1e-4)
    assert 0.5 <= by_path[str(root / "truncated.wav")]["duration"] < 0.51
    assert 0.3 < by_path[str(root / "truncated.mp3")]["duration"] < 0.9
    reference = by_path[str(root / "float64.wav")]["labels"]
    for name, tolerance in (("int16.wav", 5e-3), ("int24.wav", 1e-4)):  # (16 bits: quantisation noise)
        labels = by_path[str(root / name)]["labels"]
        assert [label["index"] for label in labels] == [label["index"] for label in reference]
        assert [label["score"] for label in labels] == pytest.approx([label["score"] for label in reference], abs=tolerance)


@pytest.mark.slow
def test_an_unreadable_file_and_folder(tmp_path):
    """Mode 000 on a file and on a folder; as root the run loses the capabilities that ignore modes."""
    prefix = mode_respecting_prefix()
    if prefix is None:
        pytest.skip("cannot run a process here for which file modes count")
    data = tmp_path / "audio"
    data.mkdir()
    make_audio_file(data / "good.wav", seconds=0.5)
    make_audio_file(data / "locked.wav", seconds=0.5).chmod(0)
    (data / "locked_dir").mkdir()
    make_audio_file(data / "locked_dir" / "inside.wav", seconds=0.5)
    (data / "locked_dir").chmod(0)
    target = tmp_path / "labels.jsonl"
    try:
        done = subprocess.run([*prefix, DYMN_TAG, str(data), *FAST, "-o", str(target)], capture_output=True, timeout=180)
    finally:
        (data / "locked_dir").chmod(0o755)
        (data / "locked.wav").chmod(0o644)
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    records = {r["path"]: r for r in jsonl(target)}
    assert sorted(records) == [str(data / "good.wav"), str(data / "locked.wav")]
    assert records[str(data / "good.wav")]["labels"]
    assert records[str(data / "locked.wav")]["error"] == f"{data / 'locked.wav'}: permission denied"
    lines, counts = stderr_report(stderr)
    assert counts == (1, 1, 0)
    assert lines == [
        f"dymn-tag: {data / 'locked_dir'}: cannot list this folder (Permission denied); its files are left out",
        f"dymn-tag: {data / 'locked.wav'}: permission denied",
    ]


@pytest.mark.slow
def test_a_file_deleted_while_the_run_goes_on(tmp_path):
    first = tmp_path / "first.wav"
    os.mkfifo(first)  # the run waits here until the test feeds it
    kept = make_audio_file(tmp_path / "kept.wav", seconds=0.4)
    later = make_audio_file(tmp_path / "later.wav", seconds=0.4)
    content = wav_bytes(tmp_path, seconds=0.6, seed=5)
    target = tmp_path / "labels.jsonl"
    with live_run([str(first), str(kept), str(later), *FAST, "--workers", "0", "-o", str(target)]) as run:
        with writing_end(first, run) as fd:  # the run is going: it reads first.wav
            later.unlink()
            write_all(fd, content)
        assert run.finish() == 1, run.lines
    records = jsonl(target)
    assert [r["path"] for r in records] == [str(first), str(kept), str(later)]
    assert records[0]["duration"] == pytest.approx(0.6) and records[1]["labels"]
    assert without_provenance(records[2]) == {"path": str(later), "error": f"{later}: file not found"}
    assert run.lines[0] == f"dymn-tag: {later}: file not found"


# --------------------------------------------------------------------------- dying decode workers


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


# --------------------------------------------------------------------------- signals and --resume


def _resume_corpus(root: Path) -> tuple[list[Path], Path]:
    """12 inputs; the 7th is a FIFO that holds the run (everything before it is done by then)."""
    root.mkdir()
    paths = []
    for i in range(12):
        path = root / f"{i:02d}.wav"
        if i in (5, 10):
            random_bytes_file(path, 1024, seed=i)
        elif i == 6:
            os.mkfifo(path)
        else:
            make_audio_file(path, seconds=0.3 + 0.05 * i, seed=i, kind="noise" if i % 2 else "sine")
        paths.append(path)
    return paths, paths[6]


def _read_output(fmt: str, path: Path):
    if fmt == "jsonl":
        return jsonl(path)
    if fmt == "csv":
        return list(csv.reader(path.open(encoding="utf-8", newline="")))
    return json.loads(path.read_text(encoding="utf-8"))


def _assert_same_output(fmt: str, got, want) -> None:
    """Equal, scores to 1e-6 (the interrupted run and the reference run in different processes)."""
    if fmt == "csv":
        assert got[0] == want[0] and len(got) == len(want)
        for a, b in zip(got[1:], want[1:]):
            assert a[:-1] == b[:-1] and float(a[-1]) == pytest.approx(float(b[-1]), abs=1e-6)
        return
    if fmt == "json":
        assert {k: v for k, v in got.items() if k != "files"} == {k: v for k, v in want.items() if k != "files"}
        got, want = got["files"], want["files"]
    assert [r["path"] for r in got] == [r["path"] for r in want]
    for a, b in zip(got, want):
        assert {k: v for k, v in a.items() if k != "labels"} == {k: v for k, v in b.items() if k != "labels"}
        assert [label["index"] for label in a.get("labels", [])] == [label["index"] for label in b.get("labels", [])]
        assert [label["score"] for label in a.get("labels", [])] == pytest.approx(
            [label["score"] for label in b.get("labels", [])], abs=1e-6
        )


@pytest.mark.parametrize(
    "fmt, signum",
    [
        ("jsonl", signal.SIGKILL),
        ("jsonl", signal.SIGTERM),
        ("jsonl", signal.SIGINT),
        ("csv", signal.SIGKILL),
        ("csv", signal.SIGTERM),
        ("json", signal.SIGKILL),
        ("json", signal.SIGTERM),
    ],
    ids=lambda v: v if isinstance(v, str) else signal.Signals(v).name,
)
@pytest.mark.slow
def test_a_stopped_run_keeps_its_results_and_resume_completes_it(tmp_path, tagger, fmt, signum):
    paths, fifo = _resume_corpus(tmp_path / "audio")
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"labels.{fmt}"
    with live_run([*map(str, paths), *FAST, "--workers", "0", "--batch-size", "1", "-o", str(target)]) as run:
        run.wait_for_line(f"{paths[5]}: not a readable audio file")  # inputs 0-5 are done; 6 holds the run
        run.proc.send_signal(signum)
        code = run.finish()
    assert code == (-signal.SIGKILL if signum == signal.SIGKILL else 128 + signum), run.lines
    done_before = [str(p) for p in paths[:6]]
    if signum == signal.SIGKILL:  # no chance to finish anything: what was flushed is all there is
        if fmt == "jsonl":
            assert [r["path"] for r in jsonl(target)] == done_before
        else:
            assert not target.exists()  # never a half-written CSV or JSON (a stale temp file may stay)
    else:
        assert temp_files(out) == []
        lines, counts = stderr_report("\n".join(run.lines))
        assert counts == (5, 1, 0) and run.lines[-1].endswith(f", stopped by {signal.Signals(signum).name}")
        kept = _read_output(fmt, target)
        if fmt == "csv":
            assert sorted({row[0] for row in kept[1:]}) == [p for p in done_before if not p.endswith("05.wav")]
        else:
            records = kept if fmt == "jsonl" else kept["files"]
            assert [r["path"] for r in records] == done_before

    # the held input becomes a real file; --resume adds what is missing
    fifo.unlink()
    make_audio_file(fifo, seconds=0.5, seed=99)
    settings_ = RunSettings(window=1.0, hop=1.0, workers=0)
    options = OutputOptions(top=3)
    summary = label_inputs(
        [str(p) for p in paths], tagger=tagger, output=target, resume=True, settings=settings_, options=options
    )
    assert summary.interrupted is None
    assert summary.skipped == (0 if signum == signal.SIGKILL and fmt != "jsonl" else 5 if fmt == "csv" else 6)
    reference = tmp_path / f"reference.{fmt}"
    label_inputs([str(p) for p in paths], tagger=tagger, output=reference, settings=settings_, options=options)
    _assert_same_output(fmt, _read_output(fmt, target), _read_output(fmt, reference))


def test_a_signal_that_lands_inside_logging_still_stops_the_run(tagger, tmp_path):
    """logging's handlers catch every Exception while they write; the stop must get through anyway."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed from the main thread")
    paths = [str(make_audio_file(tmp_path / f"{i}.wav", seconds=0.3, seed=i)) for i in range(3)]

    class SignalWhileWriting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                os.kill(os.getpid(), signal.SIGTERM)  # its Python handler runs right here
                self.stream_written = record.getMessage()
            except Exception:  # noqa: BLE001 - exactly what logging.StreamHandler.emit does
                self.handleError(record)

    logger = logging.getLogger("dymn_cli.test_reliability")
    handler = SignalWhileWriting()
    logger.addHandler(handler)
    before = signal.getsignal(signal.SIGTERM)
    try:
        summary = label_inputs(
            paths,
            tagger=tagger,
            output=tmp_path / "labels.jsonl",
            settings=RunSettings(window=1.0, hop=1.0, workers=0),
            on_outcome=lambda outcome: logger.warning("done: %s", outcome.source),
        )
    finally:
        logger.removeHandler(handler)
    assert summary.interrupted is not None and summary.interrupted.exit_code == 143
    assert [r["path"] for r in jsonl(tmp_path / "labels.jsonl")] == paths[:1]
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
def test_resume_on_the_command_line(tmp_path, tagger):
    paths, fifo = _resume_corpus(tmp_path / "audio")
    fifo.unlink()
    make_audio_file(fifo, seconds=0.5, seed=99)
    target = tmp_path / "labels.jsonl"
    settings_ = RunSettings(window=1.0, hop=1.0, workers=0)
    # a run that got halfway: the first 4 records, and half a line where it was killed
    label_inputs([str(p) for p in paths[:4]], tagger=tagger, output=target, settings=settings_, options=OutputOptions(top=3))
    with target.open("a", encoding="utf-8") as stream:
        stream.write('{"path": "half a rec')
    done = dymn_tag([*map(str, paths), *FAST, "--batch-size", "1", "--resume", "-o", str(target)])
    assert done.returncode == 1, done.stderr  # two inputs are not audio
    lines, counts = stderr_report(done.stderr.decode())
    assert counts == (6, 2, 4)
    reference = tmp_path / "reference.jsonl"
    label_inputs([str(p) for p in paths], tagger=tagger, output=reference, settings=settings_, options=OutputOptions(top=3))
    _assert_same_output("jsonl", jsonl(target), jsonl(reference))


@pytest.mark.slow
def test_resume_refuses_a_csv_with_other_columns(tmp_path):
    """A CSV of clip scores cannot be continued as a timeline (or from any other table): one usage
    error naming the file, and the file is left as it was."""
    audio = make_audio_file(tmp_path / "a.wav", seconds=0.5)
    target = tmp_path / "labels.csv"
    first = dymn_tag([str(audio), *FAST, "-o", str(target)])
    assert first.returncode == 0, first.stderr
    before = target.read_bytes()
    done = dymn_tag([str(audio), *FAST, "--timeline", "--resume", "-o", str(target)])
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert stderr.splitlines() == [
        f"dymn-tag: error: {target}: cannot resume from this file: its columns are "
        "path,rank,label,mid,index,score, this run writes path,start,end,label,mid,index,score"
    ]
    assert target.read_bytes() == before
    again = dymn_tag([str(audio), *FAST, "--resume", "-o", str(target)])  # the same table: resumes
    assert again.returncode == 0 and target.read_bytes() == before, again.stderr


@pytest.mark.slow
def test_resume_refuses_json_written_with_other_settings(tmp_path):
    audio = make_audio_file(tmp_path / "a.wav", seconds=0.5)
    target = tmp_path / "labels.json"
    assert dymn_tag([str(audio), *FAST, "-o", str(target)]).returncode == 0
    before = target.read_bytes()
    done = dymn_tag([str(audio), *FAST, "--hop", "0.5", "--resume", "-o", str(target)])
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert stderr.splitlines() == [
        f"dymn-tag: error: {target}: cannot resume from this file: it was written with other settings: hop 1.0 (this run: 0.5)"
    ]
    assert target.read_bytes() == before


@pytest.mark.slow
def test_resume_checks_parquet_columns_and_settings(tmp_path):
    pytest.importorskip("pyarrow")
    audio = make_audio_file(tmp_path / "a.wav", seconds=0.5)
    target = tmp_path / "labels.parquet"
    assert dymn_tag([str(audio), *FAST, "-o", str(target)]).returncode == 0
    again = dymn_tag([str(audio), *FAST, "--resume", "-o", str(target)])
    assert again.returncode == 0, again.stderr
    assert "0 tagged, 0 failed, 1 skipped" in again.stderr.decode()
    done = dymn_tag([str(audio), *FAST, "--timeline", "--resume", "-o", str(target)])
    assert done.returncode == 2 and "its columns are path,rank,label,mid,index,score" in done.stderr.decode()


# --------------------------------------------------------------------------- weights that would run code


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.mark.slow
def test_weights_that_would_run_code_are_refused_by_the_command(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"conv.weight": torch.zeros(2), "x": _RunsCode(marker)}, evil)
    audio = make_audio_file(tmp_path / "a.wav", seconds=0.3)
    done = dymn_tag([str(audio), "--weights", str(evil), "-o", str(tmp_path / "labels.jsonl")])
    stderr = done.stderr.decode()
    assert done.returncode != 0
    assert len(stderr.splitlines()) == 1, stderr
    assert "refusing to load" in stderr and "execute code" in stderr and str(evil) in stderr
    assert not marker.exists()
    assert not (tmp_path / "labels.jsonl").exists()


# --------------------------------------------------------------------------- fuzzing the decode-and-tag path


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("seeds")
    return {
        ext: make_audio_file(folder / f"seed{ext}", seconds=0.3, sample_rate=22_050, channels=2).read_bytes()
        for ext in (".wav", ".flac", ".mp3")
    }


@st.composite
def damaged_audio(draw, seeds: dict[str, bytes]) -> bytes:
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds)))])
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "header", "truncate", "splice", "zero"]))
        if not data:
            break
        if kind == "flip":  # a few bytes anywhere
            for _ in range(draw(st.integers(1, 8))):
                at = draw(st.integers(0, len(data) - 1))
                data[at] ^= draw(st.integers(1, 255))
        elif kind == "header":  # the fields that say rate, channels, sizes
            at = draw(st.integers(0, min(64, len(data)) - 1))
            data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "splice":  # a run of random bytes over the middle
            at = draw(st.integers(0, len(data) - 1))
            data[at : at + 64] = draw(st.binary(min_size=1, max_size=64))
        else:  # a zeroed stretch
            at = draw(st.integers(0, len(data) - 1))
            data[at : at + 256] = bytes(len(data[at : at + 256]))
    return bytes(data)


@pytest.fixture(scope="module")
def fuzz_strategy(seed_files):
    return st.one_of(damaged_audio(seed_files), st.binary(max_size=2048))


@settings(max_examples=40, deadline=5000, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_audio_gives_a_result_or_a_clean_error(tagger, fuzz_strategy, data):
    raw = data.draw(fuzz_strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioDecodeWarning)  # damage is reported in the result, not printed
        outcomes = list(tagger.tag_many([raw], window=1.0, hop=1.0))
    assert len(outcomes) == 1
    outcome = outcomes[0]
    if isinstance(outcome, TagFailure):
        assert outcome.reason.startswith("<bytes>: ") and "\n" not in outcome.reason
        with pytest.raises(AudioError):
            tagger.tag(raw, window=1.0, hop=1.0)
    else:
        assert isinstance(outcome, TagResult) and outcome.duration > 0 and len(outcome.starts) >= 1
        assert np.isfinite(outcome.scores).all() and ((outcome.scores >= 0) & (outcome.scores <= 1)).all()


_ABSURD_RATE = """
import resource, struct, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # 2 GiB of address space, all told
from dymn_cli.audio.decode import stream_audio
data = bytearray(open(sys.argv[1], "rb").read())
data[24:28] = struct.pack("<I", 2_000_000)  # the WAV header's sample rate (the highest taken), then its byte rate
data[28:32] = struct.pack("<I", 2 * 2_000_000)
print(sum(len(block) for block in stream_audio(bytes(data), block_seconds=60.0)))
"""


@pytest.mark.slow
def test_a_header_claiming_an_absurd_sample_rate_costs_no_memory(tmp_path):
    """A 19 kB WAV that says 16.7 MHz used to make the decoder ask for a 4 GB block (60 s of it); such a
    rate now fails the file (tests/test_hostile_inputs.py), and 2 MHz, the highest rate taken, still
    reads in bounded blocks."""
    wav = make_audio_file(tmp_path / "a.wav", seconds=0.3)
    done = subprocess.run(
        [sys.executable, "-c", _ABSURD_RATE, str(wav)],
        capture_output=True,
        timeout=60,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert int(done.stdout) == 154  # 9600 samples at 2 MHz, resampled to 32 kHz


# --------------------------------------------------------------------------- scale


@pytest.mark.slow
def test_two_hundred_files_a_quarter_of_them_bad(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    rng = np.random.default_rng(0)
    good, bad = [], []
    for i in range(200):
        if i % 4 == 3:
            path = root / f"f{i:03d}.wav"
            kind = i % 16
            if kind == 3:
                path.write_bytes(b"")
            elif kind == 7:
                random_bytes_file(path, 512, seed=i)
            elif kind == 11:
                path.write_text("not audio\n")
            else:  # a header and nothing else
                path.write_bytes(make_audio_file(path, seconds=0.2).read_bytes()[:44])
            bad.append(str(path))
        else:
            ext = (".wav", ".flac", ".ogg")[i % 3]
            seconds = float(rng.uniform(0.2, 1.0))
            good.append(str(make_audio_file(root / f"f{i:03d}{ext}", seconds=seconds, seed=i, kind="noise" if i % 2 else "sine")))
    target = tmp_path / "labels.jsonl"
    done = dymn_tag([str(root), *FAST, "--workers", "2", "-o", str(target)])
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    records = jsonl(target)
    assert [r["path"] for r in records] == sorted(good + bad)
    assert sorted(r["path"] for r in records if "error" in r) == sorted(bad)
    assert all(r["labels"] for r in records if "error" not in r)
    lines, counts = stderr_report(stderr)
    assert counts == (150, 50, 0) and len(lines) == 50
    assert sorted(line.split(": ")[1] for line in lines) == sorted(bad)
