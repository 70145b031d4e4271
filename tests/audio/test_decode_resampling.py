"""dymn_cli.audio.decode's resampling and downmix: exact parity with librosa.load and soxr (bit for bit),
mono as the channel mean, equal rates left alone, a single sample.

Real files written in tmp dirs by `audio_factory`; no mocks.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from dymn_cli.audio.decode import (
    load_audio,
    stream_audio,
)
from tests.audio.decode_support import SR, collect, expected_length
from tests.audio_factory import (
    noise,
    sine,
    write_audio,
)


def librosa_load(path, sr: int = SR) -> np.ndarray:
    """``librosa.load(path, sr=sr, mono=True)`` of librosa 0.10 (res_type "soxr_hq"), step for step:
    SoundFile.read(frames=-1, float32).T, to_mono = mean over axis 0, soxr via apply_along_axis,
    fix_length to ceil(n * sr / sr_native), cast back to the input dtype."""
    with sf.SoundFile(str(path)) as f:
        sr_native = f.samplerate
        y = f.read(frames=-1, dtype=np.float32, always_2d=False).T
    if y.ndim > 1:
        y = np.mean(y, axis=tuple(range(y.ndim - 1)))
    if sr_native == sr:
        return y
    ratio = float(sr) / sr_native
    n_samples = int(np.ceil(y.shape[-1] * ratio))
    y_hat = np.apply_along_axis(soxr.resample, axis=-1, arr=y, in_rate=sr_native, out_rate=sr, quality="soxr_hq")
    if y_hat.shape[-1] > n_samples:
        y_hat = y_hat[..., :n_samples]
    elif y_hat.shape[-1] < n_samples:
        y_hat = np.pad(y_hat, [(0, n_samples - y_hat.shape[-1])])
    return np.asarray(y_hat, dtype=y.dtype)


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000, 192_000])
def test_wav_equals_soxr_of_soundfile_bit_for_bit(tmp_path, rate):
    path = write_audio(tmp_path / "x.wav", noise(0.37, rate, 2, amplitude=0.6, seed=rate), rate, subtype="PCM_16")
    y = load_audio(path)
    x, sr = sf.read(path, dtype="float32")
    mono = np.mean(x, axis=1)
    direct = mono if sr == SR else soxr.resample(mono, sr, SR, quality="HQ")
    n = expected_length(len(x), sr)
    assert len(y) == n  # librosa's fix_length: ceil(n * 32000 / sr)
    assert len(direct) in (n, n - 1)  # soxr rounds the length; librosa pads the missing one with 0
    assert np.array_equal(y[: len(direct)], direct)
    assert np.all(y[len(direct) :] == 0)
    assert np.array_equal(y, librosa_load(path))


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_wav_subtypes_and_channels_match_librosa(tmp_path, subtype, channels):
    path = write_audio(tmp_path / "x.wav", noise(0.2, 44_100, channels, amplitude=0.8, seed=channels), 44_100, subtype=subtype)
    assert np.array_equal(load_audio(path), librosa_load(path))


@pytest.mark.parametrize(
    "ext,rate,channels",
    [
        (".flac", 44_100, 2),
        (".ogg", 22_050, 2),
        (".mp3", 44_100, 2),
        (".mp3", 16_000, 1),
        (".mp3", 22_050, 2),
        (".aiff", 96_000, 6),
    ],
)
def test_soundfile_formats_match_librosa_bit_for_bit(tmp_path, ext, rate, channels):
    """Includes the MPEG-2 mp3 rates where a seek to 0 before reading changes samples by an ulp."""
    path = write_audio(tmp_path / f"x{ext}", noise(1.2, rate, channels, amplitude=0.5, seed=7), rate)
    assert np.array_equal(load_audio(path), librosa_load(path))


def test_mono_is_the_channel_mean(tmp_path):
    left = sine(0.25, SR, 1, freq=440.0)[:, 0]
    right = sine(0.25, SR, 1, freq=1000.0, amplitude=0.25)[:, 0]
    path = write_audio(tmp_path / "lr.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    y = load_audio(path)
    stereo = sf.read(path, dtype="float32")[0]
    assert np.array_equal(y, np.mean(stereo, axis=1))  # 32 kHz: no resampling
    assert np.allclose(y, (left + right) / 2, atol=1e-6)


def test_equal_rates_skip_resampling(tmp_path):
    data = noise(0.3, 16_000, 1, seed=1)
    path = write_audio(tmp_path / "x.flac", data, 16_000)
    y16 = load_audio(path, sample_rate=16_000)
    assert np.array_equal(y16, sf.read(path, dtype="float32")[0])
    assert len(load_audio(path, sample_rate=32_000)) == 9_600
    assert len(load_audio(path, sample_rate=8_000)) == 2_400


@pytest.mark.parametrize("rate", [8_000, 32_000, 44_100, 96_000])
def test_one_sample_decodes(tmp_path, rate):
    path = write_audio(tmp_path / "one.wav", np.array([[0.5]]), rate, subtype="FLOAT")
    y = load_audio(path)
    assert y.dtype == np.float32 and len(y) == expected_length(1, rate)  # ceil(32000 / rate)
    assert np.array_equal(y, librosa_load(path))
    assert np.array_equal(collect(stream_audio(path)), y)
