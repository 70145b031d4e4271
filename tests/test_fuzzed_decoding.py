"""No input can crash a run or lose a result (#5): damaged audio through the decode-and-tag path.

A property-based fuzz of damaged WAV, FLAC and MP3 bytes (a result or a clean error, never a printed
warning), and a header claiming an absurd sample rate read in bounded memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dymn_cli.audio.decode import AudioDecodeWarning
from dymn_cli.errors import AudioError
from dymn_cli.tagger import TagFailure, TagResult
from tests.audio_factory import make_audio_file
from tests.support import SAFETY_NET

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
        timeout=SAFETY_NET,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert int(done.stdout) == 154  # 9600 samples at 2 MHz, resampled to 32 kHz
