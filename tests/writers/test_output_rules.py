"""One set of rules for every output (#13), checked on the files' bytes with the real `dymn-tag`.

Targets are checked before the model loads (the runs name a model that is neither cached nor
downloadable here: reaching the load would fail with exit 1, so exit 2 shows that nothing was
loaded); a rerun replaces, `--resume` continues only an output of the same model and settings;
interruptions (SIGKILL at random moments, SIGTERM during a `--resume`), a full disk, FIFOs, pipes,
devices and links. A resumed output is compared byte for byte with a clean run's: the CPU results
are batch-invariant (tests/inference/test_batch_invariance.py); the runs use `-b 1 -j 0` all the
same, the cheapest settings (no decode worker to start).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dymn_cli.writers.formats.json_lines import JsonlWriter
from dymn_cli.writers.formats.json_reading import json_document_files
from dymn_cli.writers.previous import PreviousRecords
from dymn_cli.writers.record_log import RecordLog
from dymn_cli.writers.targets import resolve_target
from tests.audio_factory import make_audio_file
from tests.support import DYMN_TAG, SAFETY_NET
from tests.watched_runs import WEIGHTS, live_run, stderr_report, writing_end

FAST = ["--weights", WEIGHTS, "--device", "cpu", "--window", "1", "--hop", "1", "--top", "3", "-b", "1", "-j", "0"]
UNLOADABLE = ["--model", "dymn10_as", "--device", "cpu"]  # not cached, no network: loading it fails (exit 1)
FORMATS = ("jsonl", "csv", "json", "parquet")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def dymn_tag(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([DYMN_TAG, *map(str, args)], capture_output=True, timeout=SAFETY_NET, **kwargs)


def _formats(*names: str) -> list:
    return [
        pytest.param(f, marks=pytest.mark.skipif(f == "parquet" and not _has_pyarrow(), reason="needs pyarrow")) for f in names
    ]


def _has_pyarrow() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def audio(tmp_path) -> list[Path]:
    folder = tmp_path / "audio"
    folder.mkdir()
    return [
        make_audio_file(folder / f"{i:02d}.wav", seconds=0.6 + 0.1 * i, seed=i, kind="noise" if i % 2 else "sine")
        for i in range(6)
    ]


def _usage_error(done: subprocess.CompletedProcess, needle: str) -> str:
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in stderr, lines
    return lines[0]


# --------------------------------------------------------------------------- checked before any work


def test_bad_targets_are_one_usage_error_before_the_model_loads(tmp_path, audio):
    first = audio[0]
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    link_to_input = tmp_path / "link.csv"
    link_to_input.symlink_to(first)
    hard_link = tmp_path / "hard.csv"
    os.link(first, hard_link)
    before = first.read_bytes()
    cases = [
        (["-o", folder], "is a folder"),
        (["-o", tmp_path / "missing" / "out.csv"], "no such folder"),
        (["-o", a_file / "out.csv"], "a part of its folder path is a file"),
        (["-f", "csv", "-o", first], "is one of the inputs"),
        (["-o", link_to_input], "is one of the inputs"),
        (["-o", hard_link], "is one of the inputs"),
        (["-o", tmp_path / "same.jsonl", "--embeddings", tmp_path / "same.jsonl"], "named by both -o and --embeddings"),
        (["-o", tmp_path / "x.jsonl", "--resume", "--output-dir", tmp_path], "not both"),
        (["-o", "/dev/null", "-f", "csv", "--resume"], "not a stream"),
        (["--output-dir", a_file], "not a folder"),
    ]
    for args, needle in cases:
        line = _usage_error(dymn_tag([first, audio[1], *UNLOADABLE, *args]), needle)
        assert line.startswith("dymn-tag: error: "), line
    assert first.read_bytes() == before and link_to_input.is_symlink()


@contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted on `folder` for the test (skipped, with the reason, where mounting is not allowed)."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_folder_is_refused_before_any_work(tmp_path, audio):
    with mounted_tmpfs(tmp_path / "locked", "ro,size=64k") as locked:
        _usage_error(dymn_tag([audio[0], *UNLOADABLE, "-o", locked / "out.jsonl"]), "read-only file system")
        _usage_error(dymn_tag([audio[0], *UNLOADABLE, "--embeddings", locked / "e.npz"]), "read-only file system")
        _usage_error(dymn_tag([audio[0], *UNLOADABLE, "--output-dir", locked]), "read-only file system")


# --------------------------------------------------------------------------- one overwrite rule


def _header_of(fmt: str, path: Path) -> dict:
    if fmt == "jsonl":  # (every record says it)
        return json.loads(path.read_text().splitlines()[0])
    if fmt == "csv":
        return json.loads((path.parent / f".{path.name}.dymn.json").read_text())
    if fmt == "json":
        return json.loads(path.read_text())
    import pyarrow.parquet as pq

    return json.loads(pq.read_schema(path).metadata[b"dymn"])


def _paths_in(fmt: str, path: Path) -> list[str]:
    if fmt == "jsonl":
        return [json.loads(line)["path"] for line in path.read_text().splitlines()]
    if fmt == "csv":
        return [row[0] for row in list(csv.reader(io.StringIO(path.read_text())))[1:]]
    if fmt == "json":
        return [r["path"] for r in json.loads(path.read_text())["files"]]
    import pyarrow.parquet as pq

    return pq.read_table(path).column("path").to_pylist()


@pytest.mark.parametrize("fmt", _formats(*FORMATS))
def test_a_rerun_replaces_and_resume_needs_the_same_model_and_settings(tmp_path, audio, fmt):
    target = tmp_path / f"out.{fmt}"
    assert dymn_tag([*audio[:2], *FAST, "-o", target]).returncode == 0
    rerun = dymn_tag([audio[0], *FAST, "--top", "1", "-o", target])
    assert rerun.returncode == 0, rerun.stderr
    assert _paths_in(fmt, target) == [str(audio[0])]  # one run's records, never two runs' mixed
    assert _header_of(fmt, target)["settings"]["top"] == 1
    after = target.read_bytes()
    _usage_error(dymn_tag([*audio[:2], *FAST, "--resume", "-o", target]), "written with other settings: top 1 (this run: 3)")
    other_model = tmp_path / "other_model.pt"
    shutil.copy(WEIGHTS, other_model)
    done = dymn_tag(
        [*audio[:2], *[str(other_model) if a == WEIGHTS else a for a in FAST], "--top", "1", "--resume", "-o", target]
    )
    _usage_error(done, "written by the model dymn04_seed0.pt@sha256:7f196060a893 (this run: other_model.pt@sha256:7f196060a893)")
    _usage_error(dymn_tag([*audio[:2], *FAST, "--top", "1", "--no-overwrite", "-o", target]), "already exists (--no-overwrite)")
    assert target.read_bytes() == after


def test_resume_refuses_a_jsonl_or_csv_that_does_not_say_what_wrote_it(tmp_path, audio):
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text(json.dumps({"path": str(audio[0]), "labels": []}) + "\n")
    _usage_error(dymn_tag([*audio[:2], *FAST, "--resume", "-o", legacy]), "holds no record of the model and settings")
    table = tmp_path / "edited.csv"
    assert dymn_tag([audio[0], *FAST, "-o", table]).returncode == 0
    with table.open("a") as stream:
        stream.write(f"{audio[1]},1,Speech,/m/09x0r,0,0.9\n")  # rows added by hand: not what dymn-tag wrote
    _usage_error(dymn_tag([*audio[:2], *FAST, "--resume", "-o", table]), "was changed after dymn-tag wrote it")


# --------------------------------------------------------------------------- interruptions


@pytest.mark.slow
@pytest.mark.parametrize("fmt", _formats(*FORMATS))
def test_sigkill_at_a_random_moment_then_resume_gives_the_clean_run_byte_for_byte(tmp_path, audio, fmt):
    reference = tmp_path / f"reference.{fmt}"
    assert dymn_tag([*audio, *FAST, "-o", reference]).returncode == 0
    target = tmp_path / "out" / f"labels.{fmt}"
    target.parent.mkdir()
    earlier = b"an earlier output, kept until this run has a complete one\n"
    target.write_bytes(earlier)
    moment = random.Random(f"{fmt}-{os.getpid()}").uniform(0.5, 6.0)
    with live_run([*map(str, audio), *FAST, "-o", str(target)]) as run:
        time.sleep(moment)
        run.proc.kill()
        run.finish()
    held = target.read_bytes()
    if fmt == "jsonl" and held != earlier:  # whole records of this run only, in order
        lines = held.decode().splitlines(keepends=True)
        assert all(line.endswith("\n") for line in lines)
        assert [json.loads(line)["path"] for line in lines] == [str(p) for p in audio[: len(lines)]]
    elif held != earlier:
        assert held == reference.read_bytes(), f"killed after {moment:.1f} s: neither the old output nor a complete one"
    if held == earlier:
        target.unlink()  # (not an output of dymn-tag: --resume would rightly refuse it)
    resumed = dymn_tag([*audio, *FAST, "--resume", "-o", target])
    assert resumed.returncode == 0, resumed.stderr
    assert target.read_bytes() == reference.read_bytes(), f"killed after {moment:.1f} s"


@pytest.mark.parametrize("fmt", _formats(*FORMATS))
def test_an_interrupted_resume_keeps_every_earlier_record(tmp_path, audio, fmt):
    """The earlier output holds inputs 0, 1 and 4; the resume is held on input 2 (a FIFO) and stopped:
    the file still holds 0, 1 and 4, whatever the format. Killed instead, it is left as it was."""
    target = tmp_path / f"out.{fmt}"
    assert dymn_tag([audio[0], audio[1], audio[4], *FAST, "-o", target]).returncode == 0
    before = target.read_bytes()
    held = tmp_path / "audio" / "02.wav"
    held.unlink()
    os.mkfifo(held)
    inputs = [str(p) for p in audio[:5]]
    for signum in (signal.SIGKILL, signal.SIGTERM):
        with live_run([*inputs, *FAST, "--resume", "-o", str(target)]) as run, writing_end(held, run):
            run.proc.send_signal(signum)
            code = run.finish()
        assert code == (-signal.SIGKILL if signum == signal.SIGKILL else 143), run.lines
        if signum == signal.SIGKILL:
            assert target.read_bytes() == before
    assert sorted(set(_paths_in(fmt, target))) == sorted({str(audio[0]), str(audio[1]), str(audio[4])}), run.lines
    assert _header_of(fmt, target)["settings"]["top"] == 3


def test_a_full_disk_is_one_line_and_the_earlier_output_stays(tmp_path, audio):
    with mounted_tmpfs(tmp_path / "disk", "size=256k") as disk:
        for fmt in ("jsonl", "csv", "json"):
            target = disk / f"out.{fmt}"
            assert dymn_tag([audio[0], *FAST, "-o", target]).returncode == 0
            before = target.read_bytes()
            filler = disk / "filler"
            with filler.open("wb") as stream:  # leave about 2 KB: less than one input with all 527 labels
                try:
                    stream.write(b"\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 2048))
                except OSError:
                    pass
            done = dymn_tag([*audio[:3], *FAST, "--top", "all", "--timeline", "-o", target])
            lines = done.stderr.decode().splitlines()
            assert done.returncode == 1, lines
            assert lines == [f"dymn-tag: error: {target}: cannot write: No space left on device"], lines
            assert target.read_bytes() == before, fmt
            assert not [p for p in disk.iterdir() if p.name.endswith(".part")]
            filler.unlink()


# --------------------------------------------------------------------------- streams and links


@pytest.mark.parametrize("fmt", _formats(*FORMATS))
def test_a_fifo_and_a_pipe_are_written_as_streams(tmp_path, audio, fmt):
    fifo = tmp_path / f"out-{fmt}.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    done = dymn_tag([*audio[:2], *FAST, "-f", fmt, "-o", fifo])
    reader.join(timeout=SAFETY_NET)
    assert done.returncode == 0, done.stderr
    assert fifo.is_fifo()  # never renamed over
    piped = dymn_tag([*audio[:2], *FAST, "-f", fmt, "-o", "/dev/stdout"])
    assert piped.returncode == 0, piped.stderr
    assert received == [piped.stdout]
    as_file = tmp_path / f"out.{fmt}"
    assert dymn_tag([*audio[:2], *FAST, "-o", as_file]).returncode == 0
    if fmt != "parquet":  # (a stream and a file get the same bytes; JSON Lines: the same records)
        assert as_file.read_bytes() == piped.stdout


def test_a_device_is_written_never_replaced(tmp_path, audio):
    done = dymn_tag([audio[0], *FAST, "-o", "/dev/null"])
    assert done.returncode == 0, done.stderr
    full = dymn_tag([audio[0], *FAST, "-f", "csv", "-o", "/dev/full"])
    assert full.returncode == 1 and full.stderr.decode().splitlines() == [
        "dymn-tag: error: /dev/full: cannot write: No space left on device"
    ]
    assert Path("/dev/full").is_char_device() and Path("/dev/null").is_char_device()


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path, audio):
    real = tmp_path / "real" / "labels.json"
    real.parent.mkdir()
    link = tmp_path / "labels.json"
    link.symlink_to(real)
    assert dymn_tag([audio[0], *FAST, "-o", link]).returncode == 0
    assert link.is_symlink() and [r["path"] for r in json.loads(real.read_text())["files"]] == [str(audio[0])]
    resumed = dymn_tag([*audio[:2], *FAST, "--resume", "-o", link])
    assert resumed.returncode == 0, resumed.stderr
    assert link.is_symlink() and _paths_in("json", real) == [str(p) for p in audio[:2]]


def test_head_stops_the_run_silently_with_the_status_of_sigpipe(tmp_path, audio):
    script = f'set -o pipefail; {DYMN_TAG} {" ".join(FAST)} {audio[0].parent} | head -1; echo "status ${{PIPESTATUS[0]}}" >&2'
    done = subprocess.run(["bash", "-c", script], capture_output=True, timeout=SAFETY_NET)
    assert json.loads(done.stdout)["path"] == str(audio[0])
    assert done.stderr.decode().splitlines() == ["status 141"]  # nothing from dymn-tag, and SIGPIPE's status


# --------------------------------------------------------------------------- missing paths, whichever the source


def test_a_missing_path_counts_the_same_from_every_source(tmp_path, audio):
    missing = tmp_path / "missing.wav"
    listing = tmp_path / "list.txt"
    listing.write_text(f"{audio[0]}\n{missing}\n")
    walked = tmp_path / "walked"
    walked.mkdir()
    shutil.copy(audio[0], walked / "00.wav")
    (walked / "01.wav").symlink_to(missing)  # a folder walk finds a name whose file is gone
    for args in ([audio[0], missing], ["--files-from", listing], [walked]):
        done = dymn_tag([*args, *FAST])
        lines, counts = stderr_report(done.stderr.decode())
        assert done.returncode == 1 and counts == (1, 1, 0), done.stderr
        assert len(lines) == 1 and ("missing.wav" in lines[0] or "01.wav" in lines[0]), lines
    _usage_error(dymn_tag([missing, *UNLOADABLE]), "no such file or folder")


# --------------------------------------------------------------------------- the pieces underneath


def test_a_record_log_never_leaves_half_a_record(tmp_path):
    target = tmp_path / "log.jsonl"
    target.write_bytes(b'{"model": "m", "settings": {}}\n{"path": "a"}\n{"path": "b", "hal')
    log = RecordLog(resolve_target(target), append=True)
    assert target.read_bytes() == b'{"model": "m", "settings": {}}\n{"path": "a"}\n'  # the cut-off line is dropped
    log.append(b'{"path": "c"}\n')
    log.close()
    assert [p for p, _ in JsonlWriter.iter_records(target)] == ["a", "c"]


def test_a_fresh_record_log_replaces_the_old_file_only_with_its_first_record(tmp_path):
    target = tmp_path / "log.jsonl"
    target.write_bytes(b"old\n")
    log = RecordLog(resolve_target(target), header=b"header\n")
    assert target.read_bytes() == b"old\n"
    log.append(b"one\n")
    assert target.read_bytes() == b"header\none\n"
    target.unlink()  # deleted during the run: put back at the end
    log.append(b"two\n")
    log.close()
    assert target.read_bytes() == b"header\none\ntwo\n"


def test_a_json_output_is_read_one_record_at_a_time(tmp_path):
    document = {"model": "m", "settings": {"top": 3}, "files": [{"path": f"/a/{i}.wav", "score": i / 7} for i in range(50)]}
    text = json.dumps(document, indent=2, ensure_ascii=False)

    class Trickle(io.StringIO):
        def read(self, size: int = -1) -> str:
            return super().read(5)

    assert list(json_document_files(Trickle(text))) == document["files"]


def test_previous_records_live_on_disk_not_in_memory(tmp_path):
    target = tmp_path / "big.jsonl"
    with target.open("w") as stream:
        stream.write('{"model": "m", "settings": {}}\n')
        for i in range(20_000):
            stream.write(json.dumps({"path": f"/audio/{i}.wav", "labels": [{"score": 0.5}] * 20}) + "\n")
    previous = PreviousRecords.read(JsonlWriter, target, payloads=False)
    assert len(previous) == 20_000 and "/audio/19999.wav" in previous and "/audio/x.wav" not in previous
    previous.close()
