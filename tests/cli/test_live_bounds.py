"""Live input at its limits: --pcm checked while the command line is parsed, a block of NaN samples a gap
(the stream goes on), a source that keeps delivering them given up with a clear record, and the memory of
a tiny declared rate bounded."""

from __future__ import annotations

import json
import resource

import numpy as np
import pytest

from tests.support import DYMN04_WEIGHTS, SAFETY_NET, dymn_tag

RATE = 32_000


@pytest.mark.parametrize("pcm", ["s16le:1:1", "u8:1:64", "s16le:999:1", "s16le:2000001:1", "f32le:32000:0", "f32le:32000:65"])
def test_absurd_pcm_rates_and_channels_are_refused_while_parsing(pcm: str) -> None:
    done = dymn_tag(["--live", "-", "--pcm", pcm, "--weights", "no-such-checkpoint.pt"], stdin=b"", timeout=30)
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().strip().splitlines() == [
        "dymn-tag: error: --pcm: the rate must be 1000 to 2000000 Hz (as for files) and the channels 1 to 64"
    ]


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype("<f4")


def _live(stdin: bytes) -> tuple[int, list[dict], str]:
    args = ["--live", "-", "--pcm", f"f32le:{RATE}:1", "--window", "1", "--weights", str(DYMN04_WEIGHTS), "-q"]
    done = dymn_tag(args, stdin=stdin, timeout=SAFETY_NET)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr.decode()


@pytest.mark.slow
def test_a_block_of_nan_is_a_gap_and_the_audio_after_it_is_tagged() -> None:
    nan = np.full(RATE, np.nan, dtype="<f4")  # one second: at least one whole read of NaN
    code, records, stderr = _live(np.concatenate([_tone(2.0), nan, _tone(3.0)]).tobytes())
    assert code == 0, stderr
    gaps = [r for r in records if r["type"] == "gap"]
    assert gaps and all("NaN or infinite" in g["reason"] for g in gaps)
    windows = [r for r in records if r["type"] == "window"]
    assert len(windows) >= 4 and max(w["end"] for w in windows) >= 4.0  # the audio after the gap is tagged
    assert records[-1]["type"] == "end" and "error" not in records[-1]
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_a_source_that_keeps_delivering_nan_ends_with_a_clear_record() -> None:
    code, records, stderr = _live(np.concatenate([_tone(1.0), np.full(60 * RATE, np.nan, dtype="<f4")]).tobytes())
    assert code == 1, stderr
    end = records[-1]
    assert end["type"] == "end" and "in a row held NaN or infinite samples" in end["error"]
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_a_tiny_declared_rate_keeps_memory_small() -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds = 64
    args = ["--live", "-", "--pcm", "u8:1000:1", "--window", "1", "--weights", str(DYMN04_WEIGHTS), "-q"]
    done = dymn_tag(args, stdin=(128 + np.arange(seconds * 1000) % 7).astype(np.uint8).tobytes(), timeout=SAFETY_NET)
    assert done.returncode == 0, done.stderr
    assert sum(json.loads(line)["type"] == "window" for line in done.stdout.splitlines()) == seconds
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kib < max(before, 1_500_000), f"peak RSS {peak_kib} KiB"


@pytest.mark.slow
def test_a_container_declaring_an_absurd_rate_ends_its_source_with_a_clear_record() -> None:
    import struct

    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16)  # PCM, mono, 1 Hz
    wav = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF)
    done = dymn_tag(
        ["--live", "-", "--window", "1", "--weights", str(DYMN04_WEIGHTS), "-q"], stdin=wav + bytes(65536), timeout=SAFETY_NET
    )
    assert done.returncode == 1, done.stderr
    end = json.loads(done.stdout.splitlines()[-1])
    assert end["type"] == "end" and "declares 1 Hz" in end["error"]
