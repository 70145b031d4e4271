"""`dymn-tag export` as users run it: the graph written whole, its output rules, and one clear line
for every bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile

from dymn_cli.export.api import AgreementTooLow, agreement_floor, check_agreement
from dymn_cli.export.quantize import Agreement
from dymn_cli.graph_metadata import INPUT, LOGITS, GraphMetadata
from tests.calibrated import calibration_waveforms
from tests.export.graphs import make_head
from tests.onnx_graphs import write_tiny_graph
from tests.support import DYMN04_WEIGHTS, dymn_tag


def one_line_error(done, *words: str, code: int) -> None:
    stderr = done.stderr.decode()
    assert done.returncode == code, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and all(word in errors[0] for word in words), stderr


def test_export_writes_a_graph_that_runs(calibrated_weights, tmp_path):
    weights = calibrated_weights("mn04")
    output = tmp_path / "mn04.onnx"
    done = dymn_tag(["export", "-o", str(output), "--weights", str(weights)])
    assert done.returncode == 0, done.stderr.decode()
    assert f"{output}: mn04_calibrated, 527 classes" in done.stderr.decode()
    assert [p.name for p in tmp_path.iterdir()] == ["mn04.onnx"]  # (no temporary file left beside it)
    metadata = GraphMetadata.from_props({p.key: p.value for p in onnx.load(output).metadata_props}, str(output))
    assert metadata.model == "mn04_calibrated" and len(metadata.labels) == 527
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    (logits,) = session.run([LOGITS], {INPUT: calibration_waveforms(2.0)[:2]})
    assert logits.shape == (2, 527) and np.isfinite(logits).all()


@pytest.mark.parametrize(
    ("case", "words", "code"),
    [
        ("folder", ["is a folder"], 2),
        ("input", ["one of the inputs"], 2),
        ("text weights", ["not a PyTorch checkpoint"], 1),
        ("truncated weights", ["truncated or corrupt"], 1),
        ("no overwrite", ["already exists (--no-overwrite)"], 2),
        ("no folder", ["no such folder"], 2),
        ("int8 alone", ["--int8 needs --calibrate"], 2),
        ("int8 mode alone", ["--int8-mode needs --int8"], 2),
        ("floor alone", ["--min-agreement needs --int8"], 2),
        ("floor above 100", ["--min-agreement: a fraction or a percentage (0.95 or 95 for 95 %), got 150"], 2),
        ("calibrate alone", ["--calibrate goes with --int8"], 2),
        ("empty calibration", ["no audio files"], 2),
        ("calibrate a file", ["not a folder"], 2),
        ("pickled head", ["not a head file"], 2),
        ("head as weights", ["is a head (from dymn-tag train), not a PyTorch checkpoint: give it with --head, beside"], 1),
        ("graph as weights", ["export needs a PyTorch checkpoint", "tag with the graph as it is: dymn-tag FILES --weights /"], 1),
        ("renamed graph", ["rename it graph.onnx and tag with the graph as it is"], 1),
        ("unknown model", ["unknown model"], 2),
    ],
)
def test_bad_inputs_end_in_one_line_and_write_nothing(case, words, code, calibrated_weights, tmp_path):
    weights = calibrated_weights("dymn04")
    output = tmp_path / "out.onnx"
    text = tmp_path / "text.pt"
    text.write_text("hello\n")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(weights.read_bytes()[:100_000])
    existing = tmp_path / "existing.onnx"
    existing.write_bytes(b"keep me")
    empty = tmp_path / "empty"
    empty.mkdir()
    args = {
        "folder": ["-o", str(tmp_path), "-w", str(weights)],
        "input": ["-o", str(weights), "-w", str(weights)],
        "text weights": ["-o", str(output), "-w", str(text)],
        "truncated weights": ["-o", str(output), "-w", str(truncated)],
        "no overwrite": ["-o", str(existing), "-w", str(weights), "--no-overwrite"],
        "no folder": ["-o", str(tmp_path / "missing" / "out.onnx"), "-w", str(weights)],
        "int8 alone": ["-o", str(output), "-w", str(weights), "--int8"],
        "int8 mode alone": ["-o", str(output), "-w", str(weights), "--int8-mode", "weights"],
        "floor alone": ["-o", str(output), "-w", str(weights), "--min-agreement", "0.5"],
        "floor above 100": ["-o", str(output), "-w", str(weights), "--int8", "--calibrate", str(empty), "--min-agreement", "150"],
        "calibrate alone": ["-o", str(output), "-w", str(weights), "--calibrate", str(empty)],
        "empty calibration": ["-o", str(output), "-w", str(weights), "--int8", "--calibrate", str(empty)],
        "calibrate a file": ["-o", str(output), "-w", str(weights), "--int8", "--calibrate", str(text)],
        "pickled head": ["-o", str(output), "-w", str(weights), "--head", str(weights)],
        "head as weights": ["-o", str(output), "-w", str(shutil.copy(make_head(weights, 64), tmp_path / "tones.head"))],
        "graph as weights": ["-o", str(output), "-w", str(write_tiny_graph(tmp_path / "graph.onnx"))],
        "renamed graph": ["-o", str(output), "-w", str(write_tiny_graph(tmp_path / "graph.pt"))],
        "unknown model": ["-o", str(output), "-m", "dymn99_as"],
    }[case]
    weights_bytes = weights.read_bytes()
    one_line_error(dymn_tag(["export", *args]), *words, code=code)
    assert not output.exists()
    assert existing.read_bytes() == b"keep me" and weights.read_bytes() == weights_bytes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_too_little_calibration_audio_is_counted_in_words(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    soundfile.write(folder / "clip.wav", calibration_waveforms(2.0)[0], 32_000)
    output = tmp_path / "out.onnx"
    done = dymn_tag(["export", "-o", str(output), "-w", str(DYMN04_WEIGHTS), "--int8", "--calibrate", str(folder)])
    one_line_error(done, f"--calibrate {folder}: 1 window of audio in 1 readable file; int8 calibration needs", code=2)
    assert not output.exists()


def test_calibration_audio_that_does_not_decode_is_named_and_skipped(tmp_path, caplog):
    from dymn_cli.export.calibration import calibration_set

    folder = tmp_path / "audio"
    folder.mkdir()
    for n, waveform in enumerate(calibration_waveforms(6.0)[:3]):
        soundfile.write(folder / f"clip{n}.wav", waveform, 32_000)
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt nonsense")
    windows = calibration_set(folder, window=64_000, sample_rate=32_000)
    assert windows.files == 3
    assert len(windows.calibrate) + len(windows.held_out) == 3 * 5  # 2 s windows every 1 s of 6 s
    assert len(windows.held_out) == 3
    assert all(w.shape == (64_000,) for w in windows.calibrate + windows.held_out)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(broken) in warnings[0] and "skipped for calibration" in warnings[0]


def test_the_agreement_says_how_many_windows_it_is_over():
    """100 % on 3 windows is 3 of 3: the printout says so, beside the figure."""
    agreement = Agreement(
        windows=3, top1=1.0, top10=0.867, mean_difference=0.004, max_difference=0.03, size_ratio=0.29, speed_ratio=1.0
    )
    first, top1, *_ = agreement.lines()
    assert first == "int8 against float32 on 3 held-out calibration windows:"
    assert top1 == "  top-1 agreement 100.0% (3 of 3 windows), mean top-10 overlap 86.7%"
    one = Agreement(windows=1, top1=0.0, top10=0.5, mean_difference=0, max_difference=0, size_ratio=0.3, speed_ratio=1.0)
    assert one.lines()[:2] == [
        "int8 against float32 on 1 held-out calibration window:",
        "  top-1 agreement 0.0% (0 of 1 window), mean top-10 overlap 50.0%",
    ]


def test_the_floor_is_a_fraction_or_a_percentage():
    assert [agreement_floor(v) for v in (0.95, 95, 1, 100, 0)] == [0.95, 0.95, 1.0, 1.0, 0.0]


def test_int8_below_the_floor_is_refused():
    agreement = Agreement(
        windows=10, top1=0.9, top10=0.8, mean_difference=0.01, max_difference=0.1, size_ratio=0.3, speed_ratio=1.0
    )
    with pytest.raises(AgreementTooLow, match=r"90.0% .* \(9 of 10 windows\), below --min-agreement 98.0%: out.onnx not written"):
        check_agreement(agreement, 0.98, Path("out.onnx"))
    check_agreement(agreement, 0.9, Path("out.onnx"))  # accepted at a lower floor (with a warning)
