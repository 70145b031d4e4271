"""`dymn-tag export --int8`: calibrated on a folder of audio, reports its agreement with float32 on
held-out windows, a third of the size at most, and runs for any batch and length (calibrated
checkpoints: the figures mean something only there)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile

from dymn_cli.export.api import export_onnx
from dymn_cli.graph_metadata import INPUT, LOGITS, GraphMetadata
from tests.calibrated import EXAMPLE_AUDIO, calibration_waveforms
from tests.support import dymn_tag

MAX_SIZE_RATIO = 0.35


@pytest.fixture(scope="module")
def calibration_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration")
    for n, waveform in enumerate(calibration_waveforms(13.7)):
        soundfile.write(folder / f"signal{n}.wav", waveform, 32_000)
    shutil.copy(EXAMPLE_AUDIO, folder / EXAMPLE_AUDIO.name)
    return folder


def metadata_of(path) -> GraphMetadata:
    return GraphMetadata.from_props({p.key: p.value for p in onnx.load(path).metadata_props}, str(path))


@pytest.mark.slow  # a calibration and two graphs over the held-out windows
def test_static_int8_reports_its_agreement_and_is_small(calibrated_weights, calibration_folder, tmp_path):
    weights = calibrated_weights("dymn04")
    output = tmp_path / "dymn04.int8.onnx"
    done = dymn_tag(
        [
            "export",
            "-o",
            str(output),
            "-w",
            str(weights),
            "--int8",
            "--calibrate",
            str(calibration_folder),
            "--min-agreement",
            "0",
        ]
    )
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert re.search(r"int8 against float32 on \d+ held-out calibration windows", stderr)
    assert re.search(r"int8: calibrating on \d+ windows of \d+ files, \d+ held out", stderr)
    assert re.search(r"top-1 agreement [\d.]+% \(\d+ of \d+ windows\), mean top-10 overlap [\d.]+%", stderr)
    assert re.search(r"score difference mean [\d.]+, largest [\d.]+", stderr)
    size = float(re.search(r"size ([\d.]+)% of float32, speed [\d.]+x float32", stderr).group(1)) / 100
    assert size <= MAX_SIZE_RATIO
    assert "Please consider" not in stderr  # (onnxruntime's own advice stays off the user's terminal)
    assert metadata_of(output).labels[0] == "Speech"
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    for batch, seconds in ((1, 1.0), (3, 13.7)):
        (logits,) = session.run([LOGITS], {INPUT: calibration_waveforms(seconds)[:batch]})
        assert logits.shape == (batch, 527) and np.isfinite(logits).all()


@pytest.mark.slow
def test_weight_only_int8_stays_close_to_float32(calibrated_weights, calibration_folder, tmp_path):
    weights = calibrated_weights("mn04")
    float32, int8 = tmp_path / "mn04.onnx", tmp_path / "mn04.int8.onnx"
    export_onnx(float32, weights=[weights])
    report = export_onnx(int8, weights=[weights], int8=True, int8_mode="weights", calibrate=calibration_folder)
    agreement = report.agreement
    assert agreement is not None and agreement.windows >= 4
    assert agreement.top1 >= 0.98 and agreement.mean_difference < 0.005
    assert int8.stat().st_size <= MAX_SIZE_RATIO * float32.stat().st_size
    assert metadata_of(int8) == metadata_of(float32)
