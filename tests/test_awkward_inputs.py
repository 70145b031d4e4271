"""No input can crash a run or lose a result (#5): the inputs themselves.

The real `dymn-tag` as a subprocess with the golden DyMN-0.4 checkpoint, short audio and 1-second
windows: one run over a folder of awkward and broken inputs, an unreadable file and folder (file modes
enforced even for root), a file deleted mid-run, 200 files of which a quarter are bad, and weights that
would run code.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.audio_factory import make_audio_file, random_bytes_file, sine, truncate_file, write_audio
from tests.permissions import mode_respecting_prefix
from tests.support import DYMN_TAG, SAFETY_NET, dymn_tag
from tests.watched_runs import (
    FAST,
    PROVENANCE,
    RATE,
    jsonl,
    live_run,
    one_line,
    stderr_report,
    wav_bytes,
    without_provenance,
    write_all,
    writing_end,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
        done = subprocess.run([*prefix, DYMN_TAG, str(data), *FAST, "-o", str(target)], capture_output=True, timeout=SAFETY_NET)
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
