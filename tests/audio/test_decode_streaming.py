"""dymn_cli.audio.decode.stream_audio: a streamed soxr resampler equals the one-shot one, streams equal
loads in every format and block size, memory stays bounded, other output rates, arguments checked eagerly.

Real files written in tmp dirs by `audio_factory`; no mocks.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from dymn_cli.audio.decode import (
    load_audio,
    stream_audio,
)
from dymn_cli.errors import AudioError, UsageError
from tests.audio.decode_support import SR, collect
from tests.audio_factory import (
    make_audio_file,
    noise,
    write_audio,
)


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000, 192_000])
def test_soxr_stream_equals_one_shot(rate):
    """The finding stream_audio relies on: libsoxr's output does not depend on the chunking."""
    rng = np.random.default_rng(rate)
    x = rng.standard_normal(rate + 123).astype(np.float32) * 0.3
    ref = soxr.resample(x, rate, SR, quality="HQ")
    for sizes in ([len(x)], [1, 2, 3, 4096], [997], [rate // 3]):
        stream = soxr.ResampleStream(rate, SR, 1, dtype="float32", quality="HQ")
        out, start, i = [], 0, 0
        while start < len(x):
            size = sizes[min(i, len(sizes) - 1)]
            out.append(stream.resample_chunk(x[start : start + size]))
            start, i = start + size, i + 1
        out.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
        assert np.array_equal(np.concatenate(out), ref)


@pytest.mark.parametrize(
    "ext,rate,channels",
    [
        (".wav", 44_100, 2),
        (".wav", 8_000, 1),
        (".wav", 192_000, 6),
        (".wav", 32_000, 8),
        (".flac", 96_000, 2),
        (".mp3", 44_100, 2),  # regression: python-soundfile's seek after each read garbles mp3 blocks
        (".mp3", 22_050, 1),
        (".ogg", 48_000, 2),
        (".m4a", 44_100, 2),
        (".webm", 48_000, 2),
        (".wv", 22_050, 1),
    ],
)
@pytest.mark.parametrize("block_seconds", [0.1, 0.37, 30.0])
def test_stream_equals_load(tmp_path, ext, rate, channels, block_seconds):
    path = write_audio(tmp_path / f"s{ext}", noise(1.3, rate, channels, amplitude=0.5, seed=rate + channels), rate)
    ref = load_audio(path)
    blocks = list(stream_audio(path, block_seconds=block_seconds))
    size = int(round(block_seconds * SR))
    assert all(len(b) == size for b in blocks[:-1]) and 0 < len(blocks[-1]) <= size
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert np.array_equal(np.concatenate(blocks), ref)


@pytest.mark.parametrize("ext,seconds", [(".wav", 60.0), (".flac", 60.0), (".mp3", 30.0), (".m4a", 20.0)])
def test_stream_memory_is_bounded(tmp_path, ext, seconds):
    import tracemalloc  # numpy reports its buffers to tracemalloc

    path = make_audio_file(tmp_path / f"long{ext}", seconds=seconds, sample_rate=48_000, channels=2, kind="noise")
    tracemalloc.start()
    try:
        total = sum(len(block) for block in stream_audio(path, block_seconds=1.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(total - seconds * SR) <= 0.03 * SR
    assert peak < 4e6, peak  # ~1 s of decoded stereo input plus ~1 s of output; the whole file is 8-30 MB


def test_stream_to_other_rates(tmp_path):
    path = write_audio(tmp_path / "s.wav", noise(0.5, 44_100, 2, seed=4), 44_100)
    for rate in (16_000, 44_100, 48_000):
        assert np.array_equal(
            collect(stream_audio(path, sample_rate=rate, block_seconds=0.05)), load_audio(path, sample_rate=rate)
        )


def test_stream_opens_eagerly_and_checks_arguments(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        stream_audio(tmp_path / "missing.wav")  # raised at the call, before iterating
    path = make_audio_file(tmp_path / "a.wav", seconds=0.1)
    for bad in (0, -1.0, float("inf"), "1"):
        with pytest.raises(UsageError):
            stream_audio(path, block_seconds=bad)
