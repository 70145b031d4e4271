"""Tagging at its edges: names at the file system's limit, a file swapped for a FIFO after the walk, lists
read from devices and FIFOs, absurd numbers, more workers than CPUs, an empty file list, a closed live
output. Each ends as a user would want: the work done, or one line before any, no finished output lost."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dymn_cli.audio.sources import RegularFile, resolve_source
from dymn_cli.audioset.ontology import parse_label_terms
from dymn_cli.errors import AudioError, UsageError
from dymn_cli.inference.cpus import usable_cpus
from dymn_cli.text_lists import read_bounded, read_lines
from tests.audio_factory import tone
from tests.support import DYMN04_WEIGHTS, DYMN_TAG, SAFETY_NET, dymn_tag

FAST = ["--weights", str(DYMN04_WEIGHTS), "--window", "0.5", "--top", "2"]


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    return stderr


@pytest.mark.slow
def test_an_output_name_at_the_limit_is_written_with_its_settings_record(tmp_path: Path) -> None:
    length = 245  # (the temporary name of its settings record would be 271 bytes)
    audio = tone(tmp_path / "a.wav", freq=440.0, seconds=0.5)
    output = tmp_path / ("o" * (length - 4) + ".csv")
    done = dymn_tag([str(audio), "-o", str(output), *FAST, "-q"], timeout=SAFETY_NET)
    assert done.returncode == 0, done.stderr
    assert output.read_text().startswith("path,")
    assert [p for p in os.listdir(tmp_path) if p.endswith(".dymn.json")], "the settings record is beside it"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
    again = dymn_tag([str(audio), "-o", str(output), *FAST, "-q", "--resume"], timeout=SAFETY_NET)
    assert again.returncode == 0 and output.exists(), again.stderr


@pytest.mark.slow
def test_raven_tables_of_a_long_named_input_and_another(tmp_path: Path) -> None:
    short = tone(tmp_path / "a.wav", freq=440.0, seconds=0.5)
    long = tone(tmp_path / ("x" * 245 + ".wav"), freq=440.0, seconds=0.5)
    done = dymn_tag([str(short), str(long), "-f", "raven", *FAST, "-q"], timeout=SAFETY_NET)
    assert done.returncode == 0, done.stderr
    tables = sorted(p for p in os.listdir(tmp_path) if p.endswith(".Table.1.selections.txt"))
    assert len(tables) == 2 and "a.Table.1.selections.txt" in tables
    assert all(len(os.fsencode(name)) <= 255 for name in tables)


@pytest.mark.slow
def test_a_file_swapped_for_a_fifo_after_the_walk_fails_alone_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    tone(folder / "a.wav", freq=440.0, seconds=0.5)
    swapped = tone(folder / "b.wav", freq=220.0, seconds=0.5)
    held = tmp_path / "held.wav"
    os.mkfifo(held)
    run = subprocess.Popen(
        [DYMN_TAG, str(held), str(folder), *FAST, "-j", "0", "-f", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    fd = os.open(held, os.O_WRONLY)  # returns once the run opened it: the folder has been walked
    try:
        swapped.unlink()
        os.mkfifo(swapped)
        os.write(fd, (tmp_path / "d" / "a.wav").read_bytes())
    finally:
        os.close(fd)
    stdout, stderr = run.communicate(timeout=SAFETY_NET)
    assert run.returncode == 1, stderr
    assert b"b.wav: was a regular file when its folder was walked" in stderr
    assert stdout.count(b'"labels"') == 2  # the other inputs are tagged


def test_a_walked_path_that_is_now_a_fifo_never_waits_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "x.wav"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(AudioError, match="was a regular file"):
        resolve_source(RegularFile(str(fifo)))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_label_list_from_an_endless_device_is_one_line(tmp_path: Path, device: str) -> None:
    audio = tone(tmp_path / "a.wav", freq=440.0, seconds=0.5)
    stderr = _one_line_error(dymn_tag([str(audio), "--labels", f"@{device}", *FAST], timeout=SAFETY_NET))
    assert "not a label list" in stderr


def test_a_label_list_from_a_fifo_is_read_as_its_writer_writes(tmp_path: Path) -> None:
    fifo = tmp_path / "labels"
    os.mkfifo(fifo)

    def write_labels() -> None:
        with open(fifo, "w") as stream:  # (opens once the reader opened the FIFO)
            stream.write("Speech\n\nMale speech, man speaking\n")

    writer = threading.Thread(target=write_labels, daemon=True)
    writer.start()
    assert parse_label_terms(f"@{fifo}") == ["Speech", "Male speech, man speaking"]
    writer.join(timeout=5)


@pytest.mark.slow
def test_a_label_list_from_a_fifo_without_a_writer_is_given_up(tmp_path: Path) -> None:
    audio = tone(tmp_path / "a.wav", freq=440.0, seconds=0.5)
    fifo = tmp_path / "labels"
    os.mkfifo(fifo)
    started = time.monotonic()
    stderr = _one_line_error(dymn_tag([str(audio), "--labels", f"@{fifo}", *FAST], timeout=SAFETY_NET))
    assert "did not come within" in stderr and time.monotonic() - started < 40


def test_absurd_seconds_are_one_line(tmp_path: Path) -> None:
    audio = tone(tmp_path / "a.wav", freq=440.0, seconds=0.5)
    for option in ("--hop", "--window"):
        _one_line_error(dymn_tag([str(audio), option, "1e308", "--weights", str(DYMN04_WEIGHTS)], timeout=SAFETY_NET))


@pytest.mark.slow
def test_workers_beyond_the_cpus_are_not_started(tmp_path: Path) -> None:
    files = [str(tone(tmp_path / f"{n}.wav", freq=300.0 + n, seconds=0.5)) for n in range(3)]
    done = dymn_tag([*files, *FAST, "-j", "64", "-f", "jsonl"], timeout=90)
    assert done.returncode == 0, done.stderr
    assert f"64 decode workers asked for, {usable_cpus()} CPUs usable" in done.stderr.decode()
    assert done.stdout.count(b'"labels"') == 3


def test_an_empty_file_list_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "list.txt"
    empty.write_text("\n\n")
    assert "names no input" in _one_line_error(dymn_tag(["--files-from", str(empty), *FAST], timeout=SAFETY_NET))
    assert "names no input" in _one_line_error(dymn_tag(["--files-from", "-", *FAST], stdin=b"", timeout=SAFETY_NET))


@pytest.mark.slow
def test_a_closed_live_output_is_quiet_with_141() -> None:
    audio = (np.sin(np.arange(32_000 * 30) / 5.0) * 8000).astype("<i2").tobytes()
    run = subprocess.Popen(
        [DYMN_TAG, "--live", "-", "--pcm", "s16le:32000:1", *FAST],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    feeder = threading.Thread(target=lambda: _feed(run.stdin, audio), daemon=True)
    feeder.start()
    run.stdout.readline()  # the first record: then the reader goes away
    run.stdout.close()
    stderr = run.stderr.read()  # (not communicate(): the feeder may have closed stdin already)
    assert run.wait(SAFETY_NET) in (141, -13), stderr
    assert stderr == b"", stderr


def _feed(stream, data: bytes) -> None:
    try:
        stream.write(data)
        stream.close()
    except OSError:
        pass


def test_small_files_and_lists_from_a_fifo_without_a_writer_are_given_up(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="did not come within 0.2 s"):
        read_bounded(str(fifo), what="truth file", max_total=1 << 20, wait=0.2)
    with pytest.raises(UsageError, match="did not come within 0.2 s"):
        list(read_lines(str(fifo), what="label list", max_line=100, wait=0.2))
    with pytest.raises(UsageError, match="larger than 1 MiB"):
        read_bounded("/dev/zero", what="truth file", max_total=1 << 20, wait=0.2)
