"""dymn_cli.audio.decode.prepare_waveform: arrays and torch tensors in any layout, integer samples
scaled like PCM files, the layout rule, bad arrays and rates, arrays resampled.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from dymn_cli.audio.decode import (
    MAX_CHANNELS,
    load_audio,
    prepare_waveform,
)
from dymn_cli.errors import AudioError, UsageError
from tests.audio.decode_support import SR
from tests.audio_factory import (
    noise,
    write_audio,
)


@pytest.fixture(scope="module")
def float_wav(tmp_path_factory):
    data = noise(0.3, 44_100, 2, amplitude=0.7, seed=11).astype(np.float32)
    path = write_audio(tmp_path_factory.mktemp("arr") / "f.wav", data, 44_100, subtype="FLOAT")
    return path, data


def test_array_layouts_equal_the_file(float_wav):
    path, data = float_wav
    ref = load_audio(path)
    assert np.array_equal(prepare_waveform(data, source_rate=44_100), ref)  # [N, C]
    assert np.array_equal(prepare_waveform(np.ascontiguousarray(data.T), source_rate=44_100), ref)  # [C, N]
    assert np.array_equal(prepare_waveform(data.T, source_rate=44_100), ref)  # a strided view
    assert np.array_equal(prepare_waveform(data.T[None], source_rate=44_100), ref)  # [1, C, N]
    assert np.array_equal(prepare_waveform(data.astype(np.float64), source_rate=44_100), ref)
    mono = data[:, 0]
    assert np.array_equal(prepare_waveform(mono, source_rate=44_100), prepare_waveform(mono[:, None], source_rate=44_100))
    assert np.array_equal(prepare_waveform(mono[None, :], source_rate=44_100), prepare_waveform(mono, source_rate=44_100))


def test_torch_tensors(float_wav):
    torch = pytest.importorskip("torch")
    path, data = float_wav
    ref = load_audio(path)
    assert np.array_equal(prepare_waveform(torch.from_numpy(data.T.copy()), source_rate=44_100), ref)
    assert np.array_equal(prepare_waveform(torch.from_numpy(data), source_rate=44_100), ref)
    t = torch.from_numpy(data.T.copy()).requires_grad_(True)
    assert np.array_equal(prepare_waveform(t, source_rate=44_100), ref)
    half = prepare_waveform(torch.from_numpy(data.T.copy()).to(torch.bfloat16), source_rate=44_100)
    assert half.dtype == np.float32 and np.abs(half - ref).max() < 0.02
    ints = torch.from_numpy((data * 32767).astype(np.int16))
    assert np.abs(prepare_waveform(ints, source_rate=44_100) - ref).max() < 1e-3


@pytest.mark.parametrize(
    "dtype,subtype",
    [(np.int16, "PCM_16"), (np.int32, "PCM_32"), (np.uint8, "PCM_U8"), (np.int8, "PCM_U8")],
)
def test_int_arrays_are_scaled_like_pcm_files(tmp_path, dtype, subtype):
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    ints = rng.integers(info.min, info.max, size=(2_000, 2), endpoint=True, dtype=np.int64).astype(dtype)
    offset = 128 if dtype == np.uint8 else 0
    as_float = (ints.astype(np.float64) - offset) / (2.0 ** (8 * np.dtype(dtype).itemsize - 1))
    path = write_audio(tmp_path / "i.wav", as_float, 48_000, subtype=subtype)
    assert np.array_equal(prepare_waveform(ints, source_rate=48_000), load_audio(path))


def test_int_full_scale():
    y = prepare_waveform(np.array([-32768, 0, 16384], dtype=np.int16), source_rate=SR)
    assert y.tolist() == [-1.0, 0.0, 0.5]
    assert prepare_waveform(np.array([0, 128, 255], dtype=np.uint8), source_rate=SR).tolist() == [-1.0, 0.0, 127 / 128]


def test_layout_rule_smaller_dimension_is_channels():
    a = np.zeros((3, 10), dtype=np.float32)
    a[0] = 1.0
    assert np.allclose(prepare_waveform(a, source_rate=SR), 1 / 3)  # [C=3, N=10]
    assert np.allclose(prepare_waveform(a.T, source_rate=SR), 1 / 3)  # [N=10, C=3]
    square = np.array([[1.0, 1.0], [0.0, 0.0]], dtype=np.float32)  # square: channels-first
    assert prepare_waveform(square, source_rate=SR).tolist() == [0.5, 0.5]


@pytest.mark.parametrize(
    "array,match",
    [
        (np.zeros((0,), np.float32), "no audio samples"),
        (np.zeros((2, 0), np.float32), "no audio samples"),
        (np.zeros((2, 3, 4), np.float32), "1-D or 2-D"),
        (np.zeros((MAX_CHANNELS + 1, 1000), np.float32), "channels"),
        (np.array([0.0, np.nan], np.float32), "NaN or infinite"),
        (np.array([0.0, np.inf]), "NaN or infinite"),
        (np.array([True, False]), "unsupported sample type"),
        (np.array([1j, 0j]), "unsupported sample type"),
        (np.array(["a", "b"]), "unsupported sample type"),
    ],
)
def test_bad_arrays(array, match):
    with pytest.raises(AudioError, match=match) as err:
        prepare_waveform(array, source_rate=SR)
    assert str(err.value).startswith("<array>:")


@pytest.mark.parametrize("rate", [0, -1, float("nan"), "fast", None, True])
def test_bad_rates_are_usage_errors(rate):
    with pytest.raises(UsageError):
        prepare_waveform(np.zeros(10, np.float32), source_rate=rate)
    with pytest.raises(UsageError):
        load_audio(b"unused", sample_rate=rate)


def test_array_resampling_rates():
    x = noise(1.0, 22_050, 1, seed=2)[:, 0].astype(np.float32)
    y = prepare_waveform(x, source_rate=22_050)
    assert len(y) == 32_000
    assert np.array_equal(y, soxr.resample(x, 22_050, SR, quality="HQ"))
    assert len(prepare_waveform(x, source_rate=22_050, sample_rate=16_000)) == 16_000
