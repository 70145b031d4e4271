"""No input can crash a run or lose a result (#5): a stopped run keeps what it did, `--resume` completes it.

SIGINT / SIGTERM / SIGKILL in the middle of a real `dymn-tag` run (held at a FIFO) in every format and
`--resume` after each, a signal that lands inside logging, and `--resume` refusing outputs written with
other columns or settings.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import threading
from pathlib import Path

import pytest

from dymn_cli.run.runner import RunSettings, label_inputs
from dymn_cli.writers.base import OutputOptions
from tests.audio_factory import make_audio_file, random_bytes_file
from tests.support import dymn_tag
from tests.watched_runs import (
    FAST,
    jsonl,
    live_run,
    stderr_report,
    temp_files,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
        assert counts == (5, 1, 0) and run.lines[-1].endswith(f", stopped by {signal.Signals(signum).name}"), run.lines
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
