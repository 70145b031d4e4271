"""Inputs that can neither stop nor hang a run (#14).

Real `dymn-tag` runs (golden DyMN-0.4 checkpoint, 1-second windows) over the hostile corpus of
`tests/hostile_corpus.py` with decoding in process and in worker processes; `--file-timeout` against
a FIFO nobody writes, /dev/zero, standard input closed, empty and endless (peak memory measured);
names no terminal or UTF-8 file should take raw; the limits on numbers; checkpoints that cannot label
AudioSet; and a hypothesis fuzz of corrupted containers through both decode paths.
"""

from __future__ import annotations

import csv
import json
import os
import re
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dymn_cli import Tagger
from dymn_cli.tagger import TagFailure, TagResult
from dymn_cli.terminal import printable
from dymn_cli.writers.names import csv_name, json_text, name_from_csv
from tests.audio_factory import make_audio_file, sine
from tests.hostile_corpus import container_seeds, damaged_copies, lying_wavs, odd_named_copies, special_files
from tests.support import DYMN04_WEIGHTS, DYMN_TAG

WEIGHTS = str(DYMN04_WEIGHTS)
FAST = ["--weights", WEIGHTS, "--device", "cpu", "--window", "1", "--hop", "1", "--top", "2"]
SUMMARY = re.compile(r"^dymn-tag: (\d+) tagged, (\d+) failed(?:, (\d+) skipped)?")  # (no skipped part when 0)


def dymn_tag(args: list[str], *, timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    """(tests.support's takes stdin as bytes; these tests give it descriptors: FIFOs, pipes, /dev/zero)"""
    return subprocess.run([DYMN_TAG, *args], capture_output=True, timeout=timeout, **kwargs)


def summary_of(stderr: str) -> tuple[int, int, int]:
    found = SUMMARY.match(stderr.splitlines()[-1])
    assert found, stderr[-2000:]
    return int(found[1]), int(found[2]), int(found[3] or 0)


def assert_clean_stderr(stderr: bytes) -> str:
    """Every line is ours ("dymn-tag: ..."), there is no traceback, and nothing in it can drive a
    terminal: no control character but the newline, no byte that is not UTF-8."""
    text = stderr.decode("utf-8")  # (raises if a raw non-UTF-8 byte got through)
    assert "Traceback" not in text, text[-3000:]
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), repr(text[-2000:])
    for line in text.splitlines():
        assert line.startswith("dymn-tag: "), repr(line)
    return text


def jsonl(path: Path) -> list[dict]:
    """The input records of a JSONL file (its first line, the header record, has no path)."""
    return [r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if "path" in r]


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


# --------------------------------------------------------------------------- --file-timeout and streams


@pytest.fixture(scope="module")
def two_files(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("two")
    return (
        os.fspath(make_audio_file(folder / "a.wav", seconds=1.0)),
        os.fspath(make_audio_file(folder / "b.flac", seconds=1.0)),
    )


def tagged_paths(stdout: bytes) -> list[str]:
    return [r["path"] for r in map(json.loads, stdout.decode().splitlines()) if "labels" in r]


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "writer"), [("0", "none"), ("2", "none"), ("0", "silent"), ("2", "silent")])
def test_a_stalled_fifo_times_out_and_the_run_goes_on(two_files, tmp_path, workers, writer):
    fifo = tmp_path / "stalled.wav"
    os.mkfifo(fifo)
    # "silent": a writer has the FIFO open and never writes (O_RDWR: opening it does not block)
    held = os.open(fifo, os.O_RDWR) if writer == "silent" else None
    try:
        started = time.monotonic()
        done = dymn_tag([*FAST, "-f", "jsonl", "-j", workers, "--file-timeout", "2", two_files[0], str(fifo), two_files[1]])
        elapsed = time.monotonic() - started
    finally:
        if held is not None:
            os.close(held)
    text = assert_clean_stderr(done.stderr)
    assert f"dymn-tag: {fifo}: timed out after 2 s" in text.splitlines()
    assert tagged_paths(done.stdout) == list(two_files)
    assert done.returncode == 1 and summary_of(text) == (2, 1, 0)
    assert elapsed < 60


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_silent_standard_input_times_out_with_and_without_workers(two_files, workers):
    """With workers, standard input is read in the main process (for a worker); without, decoded as it comes."""
    silent, held = os.pipe()  # the test holds the write end open and never writes
    try:
        done = dymn_tag(
            [*FAST, "-f", "jsonl", "-j", workers, "--file-timeout", "2", "-", two_files[0]], stdin=silent, timeout=120
        )
    finally:
        os.close(held)
        os.close(silent)
    text = assert_clean_stderr(done.stderr)
    assert "dymn-tag: <stdin>: timed out after 2 s" in text.splitlines()
    assert tagged_paths(done.stdout) == [two_files[0]] and summary_of(text) == (1, 1, 0)


@pytest.mark.slow
def test_dev_zero_as_a_file_as_stdin_and_as_a_file_list(two_files):
    named = dymn_tag([*FAST, "-f", "jsonl", "-j", "0", two_files[0], "/dev/zero", two_files[1]])
    text = assert_clean_stderr(named.stderr)
    assert any(line.startswith("dymn-tag: /dev/zero: not a readable audio file") for line in text.splitlines())
    assert tagged_paths(named.stdout) == list(two_files)
    with open("/dev/zero", "rb") as zero:
        piped = dymn_tag([*FAST, "-f", "jsonl", "--file-timeout", "20", "-", two_files[0]], stdin=zero)
    text = assert_clean_stderr(piped.stderr)
    assert any(line.startswith("dymn-tag: <stdin>: ") for line in text.splitlines())
    assert tagged_paths(piped.stdout) == [two_files[0]] and summary_of(text) == (1, 1, 0)
    listed = dymn_tag([*FAST, "--files-from", "/dev/zero"])
    assert listed.returncode == 2
    assert assert_clean_stderr(listed.stderr).strip() == (
        "dymn-tag: error: /dev/zero: line 1 is longer than 65536 bytes: not a list of paths"
    )


@pytest.mark.slow
def test_standard_input_closed_or_empty_costs_only_that_input(two_files):
    closed = subprocess.run(
        ["bash", "-c", 'exec "$0" "$@" <&-', DYMN_TAG, *FAST, "-f", "jsonl", "-", two_files[0]],
        capture_output=True,
        timeout=240,
    )
    text = assert_clean_stderr(closed.stderr)
    assert "dymn-tag: <stdin>: cannot read the input (standard input is closed)" in text.splitlines()
    assert tagged_paths(closed.stdout) == [two_files[0]] and closed.returncode == 1
    empty = dymn_tag([*FAST, "-f", "jsonl", two_files[0], "-"], stdin=subprocess.DEVNULL)
    text = assert_clean_stderr(empty.stderr)
    assert "dymn-tag: <stdin>: empty input (0 bytes)" in text.splitlines()
    assert tagged_paths(empty.stdout) == [two_files[0]]
    listed = subprocess.run(
        ["bash", "-c", 'exec "$0" "$@" <&-', DYMN_TAG, *FAST, "--files-from", "-"], capture_output=True, timeout=60
    )
    assert listed.returncode == 2 and "standard input" in assert_clean_stderr(listed.stderr)


def _peak_rss_mib(args: list[str], *, feed=None) -> tuple[float, bytes, int]:
    """Run dymn-tag, returning its own peak RSS (wait4's, not all the children's) and its stderr."""
    process = subprocess.Popen(
        [DYMN_TAG, *args],
        stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if feed:
        threading.Thread(target=feed, args=(process.stdin,), daemon=True).start()
    stderr = b""
    reader = threading.Thread(target=lambda: globals().__setitem__("_stderr", process.stderr.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join(10)
    stderr = globals().pop("_stderr", b"")
    return usage.ru_maxrss / 1024, stderr, process.returncode


def _endless_wav(stream) -> None:
    """A WAV header that promises 4 GB, then silence for as long as anyone reads."""
    header = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 32_000, 64_000, 2, 16)
    block = bytes(1 << 20)
    try:
        stream.write(header + b"data" + struct.pack("<I", 0xFFFFFFFF))
        while True:
            stream.write(block)
    except (BrokenPipeError, OSError, ValueError):
        pass


@pytest.mark.slow
def test_an_endless_standard_input_is_stopped_by_the_timeout_in_flat_memory(two_files):
    baseline, _, _ = _peak_rss_mib([*FAST, "-j", "0", two_files[0]])
    peak, stderr, code = _peak_rss_mib([*FAST, "--file-timeout", "8", "-", two_files[0]], feed=_endless_wav)
    text = assert_clean_stderr(stderr)
    assert "dymn-tag: <stdin>: timed out after 8 s" in text.splitlines() and code == 1
    assert summary_of(text) == (1, 1, 0)
    # Before #14 standard input was read whole: gigabytes in these 8 s. Now: a 64 MiB buffer, a block
    # of decoded audio and one window's outputs per second of audio (loose bound for a shared machine).
    assert peak < baseline + 400, (peak, baseline)


# --------------------------------------------------------------------------- names, terminals, numbers


@pytest.mark.slow
def test_any_name_round_trips_through_every_format_resume_and_merge(tmp_path, tagger):
    good = make_audio_file(tmp_path / "seed.wav", seconds=1.0).read_bytes()
    names = odd_named_copies(tmp_path / "odd", good)
    bad = os.fsdecode(os.path.join(os.fsencode(tmp_path / "odd"), b"esc\x1b]0;title\x07\xff.wav"))
    Path(bad).write_bytes(b"not audio at all")
    # The command: stderr escapes the names, stdout (JSON Lines) holds them all.
    done = dymn_tag([*FAST, "-j", "0", *names, bad])
    text = assert_clean_stderr(done.stderr)
    assert summary_of(text) == (len(names), 1, 0)
    shown = [line for line in text.splitlines() if "not a readable audio file" in line]
    assert shown == [f"dymn-tag: {printable(bad)}: not a readable audio file (unknown format or corrupt data)"]
    assert [json.loads(line)["path"] for line in done.stdout.decode("utf-8").splitlines()] == [*names, bad]
    # Every format writes them, --resume and merge recognise them (the run's library function, one model).
    from dymn_cli.run.runner import RunSettings, label_inputs
    from dymn_cli.writers.base import OutputOptions
    from dymn_cli.writers.merge import merge_outputs

    settings = RunSettings(window=1.0, hop=1.0, workers=0)
    for fmt in ["csv", "json", "jsonl"] + (["parquet"] if _has_pyarrow() else []):
        out = tmp_path / f"out.{fmt}"
        first = label_inputs([*names, bad], tagger=tagger, output=out, options=OutputOptions(top=2), settings=settings)
        assert (first.tagged, first.failed) == (len(names), 1)
        assert set(_paths_in(out, fmt)) == set(names), fmt
        again = label_inputs(
            [*names, bad], tagger=tagger, output=out, options=OutputOptions(top=2), settings=settings, resume=True
        )
        assert again.skipped == len(names) + (fmt in ("json", "jsonl")) and again.tagged == 0, fmt
        merged = tmp_path / f"merged.{fmt}"
        merge_outputs([out], merged)
        assert set(_paths_in(merged, fmt)) == set(names), fmt


def _has_pyarrow() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _paths_in(path: Path, fmt: str) -> list[str]:
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as stream:
            return [name_from_csv(row[0]) for row in list(csv.reader(stream))[1:] if row]
    if fmt == "json":
        return [r["path"] for r in json.loads(path.read_text(encoding="utf-8"))["files"] if "labels" in r]
    if fmt == "jsonl":
        return [r["path"] for r in jsonl(path) if "labels" in r]
    import pyarrow.parquet as pq

    return [name_from_csv(p) for p in pq.read_table(path).column("path").to_pylist()]


@given(
    st.text(alphabet=st.sampled_from(["a", "\\", "x", "f", "8", "0", "\r", "\n", "\x1b", "\udcff", "\udc80", "é"]), max_size=12)
)
@settings(max_examples=300, derandomize=True, database=None)
def test_name_escapes_round_trip_and_stay_utf8(name):
    assert name_from_csv(csv_name(name)) == name
    assert json.loads(json_text({"path": name}))["path"] == name
    csv_name(name).encode("utf-8")
    json_text(name).encode("utf-8")
    shown = printable(name)
    shown.encode("utf-8")
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", shown)


def test_csv_quotes_carriage_returns(tmp_path):
    from dymn_cli.writers.names import csv_writer

    with open(tmp_path / "x.csv", "w", encoding="utf-8", newline="") as stream:
        csv_writer(stream).writerows([["cr\rname.wav", 1], ["plain.wav", 2]])
    with open(tmp_path / "x.csv", encoding="utf-8", newline="") as stream:
        assert stream.read() == '"cr\rname.wav",1\nplain.wav,2\n'


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--window", "100000", "window must be at most 600 s, got 100000"),
        ("--window", "0.01", "window must be at least 0.09 s (9 log-mel frames), got 0.01"),
        ("--hop", "1e-6", "hop must be at least 0.01 s (one log-mel frame), got 1e-06"),
        ("--hop", "nan", "--hop: nan is not a positive number of seconds"),  # (checked while parsing, #16)
        ("--file-timeout", "0", "--file-timeout: 0 is not a positive number of seconds"),
    ],
)
def test_numbers_that_make_no_sense_are_one_usage_error(two_files, option, value, message):
    args = [a for a in FAST if a not in ("--window", "--hop", "1")] if option in ("--window", "--hop") else FAST
    done = dymn_tag([*args, option, value, two_files[0]], timeout=60)
    assert done.returncode == 2
    assert assert_clean_stderr(done.stderr).strip() == f"dymn-tag: error: {message}"


def test_long_windows_make_smaller_batches():
    from dymn_cli.audio.windows import WindowGrid

    grid = WindowGrid.from_seconds(window=600, hop=600, sample_rate=32_000)
    assert grid.batch_size(128) == 2 and grid.batch_size(1) == 1
    assert WindowGrid.from_seconds(window=10, hop=10, sample_rate=32_000).batch_size(128) == 128


# --------------------------------------------------------------------------- checkpoints and scores


@pytest.mark.slow
def test_a_classifier_without_527_outputs_is_refused(tmp_path, two_files):
    from dymn_cli.models.build import create_model

    path = tmp_path / "ten.pt"
    torch.save(create_model(family="mn", width=0.1, num_classes=10).state_dict(), path)
    done = dymn_tag(["--weights", str(path), "--device", "cpu", two_files[0]], timeout=120)
    assert done.returncode == 1
    assert "its classifier has 10 outputs, not the 527 AudioSet classes" in assert_clean_stderr(done.stderr)


@pytest.mark.slow
def test_sha256_with_several_checkpoints_is_refused_not_ignored(two_files):
    done = dymn_tag(["--weights", WEIGHTS, "--weights", WEIGHTS, "--sha256", "0" * 64, two_files[0]], timeout=120)
    assert done.returncode == 2
    assert "--sha256 is the hash of one checkpoint, and 2 were given" in assert_clean_stderr(done.stderr)


def test_a_network_output_that_is_not_a_number_fails_the_input_never_a_nan_score(tmp_path, two_files):
    state = torch.load(WEIGHTS)
    state["classifier.5.bias"][3] = float("nan")
    broken = tmp_path / "nan.pt"
    torch.save(state, broken)
    tagger = Tagger(None, weights=[str(broken)], device="cpu")
    (outcome,) = tagger.tag_many([two_files[0]], window=1.0, hop=1.0)
    assert isinstance(outcome, TagFailure) and "not a number" in outcome.reason
    from dymn_cli.run.runner import RunSettings, label_inputs

    out = tmp_path / "x.json"
    summary = label_inputs([two_files[0]], tagger=tagger, output=out, settings=RunSettings(window=1.0, hop=1.0, workers=0))
    assert summary.failed == 1 and summary.exit_code == 1
    json.loads(out.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))


def test_the_ray_runner_shares_the_check_for_outputs_that_are_not_numbers():
    """The local pipeline and the Ray runner's assembly keep windows through `PendingInput.add_window`."""
    from dymn_cli.inference.pipeline import Failure, PendingInput

    state = PendingInput(expected=2)
    state.add_window(0, np.zeros(527, np.float32), np.zeros(8, np.float32))
    state.add_window(1, np.full(527, np.inf, np.float32), np.zeros(8, np.float32))
    assert state.complete()
    outcome = state.outcome(0)
    assert isinstance(outcome, Failure) and "not a number" in outcome.reason and "window 1" in outcome.reason


# --------------------------------------------------------------------------- the API and the fuzz


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(None, weights=[WEIGHTS], device="cpu", batch_size=4)


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
