"""The examples in examples/ run as a user would run them (with the golden checkpoint as weights)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import EXAMPLES, SAFETY_NET

pytestmark = pytest.mark.slow  # every test here starts dymn-tag or decode workers


def test_shell_example_runs(golden_dir):
    env = {
        **os.environ,
        "WEIGHTS": str(golden_dir / "dymn04_seed0.pt"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(["bash", str(EXAMPLES / "tag_folder.sh")], capture_output=True, env=env, timeout=SAFETY_NET)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert out.startswith("path,rank,label,mid,index,score\n")
    assert "chimes_and_noise.wav" in out


def test_python_example_runs(golden_dir):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "tag_with_python.py"), str(golden_dir / "dymn04_seed0.pt")],
        capture_output=True,
        timeout=SAFETY_NET,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "chimes_and_noise.wav: 12.0 s, 5 windows" in out and "embedding of a 440 Hz tone: 384 values" in out


def test_example_audio_is_what_the_generator_makes(tmp_path):
    import numpy as np
    import soundfile

    sys.path.insert(0, str(EXAMPLES))
    try:
        import make_example_audio
    finally:
        sys.path.pop(0)
    committed, rate = soundfile.read(EXAMPLES / "audio" / "chimes_and_noise.wav", dtype="float32")
    assert rate == make_example_audio.RATE
    np.testing.assert_allclose(committed, make_example_audio.make(), atol=1 / 2**15)


def test_onnx_example_matches_dymn_tag_without_torch(tmp_path):
    """examples/onnx_tag.py (numpy, soundfile, soxr, onnxruntime) prints the labels dymn-tag gives."""
    from tests.no_torch import no_torch_env
    from tests.onnx_graphs import write_tiny_graph
    from tests.support import dymn_tag

    graph = write_tiny_graph(tmp_path / "tiny.onnx")
    env = {**os.environ, **no_torch_env(tmp_path)}
    audio = EXAMPLES / "audio" / "chimes_and_noise.wav"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "onnx_tag.py"), str(graph), str(audio), "3"], capture_output=True, env=env
    )
    assert done.returncode == 0, done.stderr
    printed = [line.split(maxsplit=1) for line in done.stdout.decode().splitlines()]
    tagged = dymn_tag([str(audio), "--weights", str(graph), "--top", "3", "-f", "csv"], env=env)
    rows = [line.split(",") for line in tagged.stdout.decode().splitlines()[1:]]
    assert [label for _, label in printed] == [row[2] for row in rows]
    assert all(abs(float(score) - float(row[-1])) < 1e-4 for (score, _), row in zip(printed, rows))
