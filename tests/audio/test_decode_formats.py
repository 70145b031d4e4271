"""dymn_cli.audio.decode by container and codec: every format decodes to 32 kHz mono (soundfile or
PyAV), audio tracks of video files, audio_info of each, and the extensions taken as audio.

Real files written in tmp dirs by `audio_factory` (soundfile and PyAV encoders); no mocks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dymn_cli.audio.decode import (
    AudioInfo,
    audio_info,
    load_audio,
)
from dymn_cli.audio.paths import AUDIO_EXTENSIONS, is_audio_path
from tests.audio.decode_support import SR, expected_length
from tests.audio_factory import (
    make_audio_file,
    make_video_file,
    noise,
    write_audio,
)


def peak_hz(y: np.ndarray, rate: int = SR) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * rate / len(y))


# ext, rate, channels, writer options, decoder, tolerance in ms (None = exact length)
FORMATS = [
    (".wav", 44_100, 1, {}, "soundfile", None),
    (".flac", 48_000, 1, {}, "soundfile", None),
    (".ogg", 44_100, 1, {}, "soundfile", None),  # vorbis
    (".oga", 48_000, 1, {"subtype": "OPUS"}, "soundfile", None),  # opus in ogg, by libsndfile
    (".mp3", 44_100, 1, {}, "soundfile", None),  # LAME tag: gapless
    (".mp3", 16_000, 1, {}, "soundfile", None),  # MPEG-2 low rate
    (".aiff", 22_050, 1, {}, "soundfile", None),
    (".au", 8_000, 1, {}, "soundfile", None),
    (".caf", 44_100, 1, {}, "soundfile", None),
    (".w64", 44_100, 1, {}, "soundfile", None),
    (".m4a", 44_100, 1, {}, "pyav", 1),  # cut to the mp4 track duration
    (".aac", 44_100, 1, {}, "pyav", 60),  # raw ADTS: encoder delay and padding stay
    (".opus", 48_000, 1, {}, "soundfile", None),  # PyAV-encoded ogg/opus, read by libsndfile
    (".webm", 48_000, 1, {}, "pyav", 1),
    (".mka", 48_000, 1, {}, "pyav", 1),
    (".wma", 44_100, 1, {}, "pyav", 60),  # FFmpeg's wmav2 encoder drops the last partial frame
    (".ac3", 48_000, 1, {}, "pyav", 40),
    (".wv", 44_100, 1, {}, "pyav", None),
]


@pytest.mark.parametrize("ext,rate,channels,options,decoder,tolerance_ms", FORMATS, ids=[f"{f[0][1:]}-{f[1]}" for f in FORMATS])
def test_format_decodes_to_32k_mono(tmp_path, ext, rate, channels, options, decoder, tolerance_ms):
    seconds = 0.6
    path = make_audio_file(tmp_path / f"tone{ext}", seconds=seconds, sample_rate=rate, channels=channels, **options)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    info = audio_info(path)
    assert info.decoder == decoder
    assert info.sample_rate == rate and info.channels == channels
    n_expected = expected_length(int(round(seconds * rate)), rate)
    if tolerance_ms is None:
        assert len(y) == n_expected
    else:
        assert abs(len(y) - n_expected) <= tolerance_ms * SR / 1000
    assert abs(peak_hz(y) - 440.0) < 5.0
    assert 0.2 < np.sqrt(np.mean(y[len(y) // 4 : 3 * len(y) // 4] ** 2)) < 0.5  # amplitude 0.5 sine: rms 0.354


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv", ".webm"])
def test_video_audio_track(tmp_path, ext):
    path = make_video_file(tmp_path / f"clip{ext}", seconds=0.5, sample_rate=48_000, channels=2)
    y = load_audio(path)
    info = audio_info(path)
    assert info.decoder == "pyav" and info.channels == 2 and info.sample_rate == 48_000
    tolerance = 1 if ext in (".mp4", ".mov", ".webm") else 40  # aac in mkv keeps its end padding
    assert abs(len(y) - 16_000) <= tolerance * SR / 1000
    # stereo 440 Hz + 880 Hz at amplitude 0.5 each, averaged: both present
    assert min(abs(peak_hz(y) - 440.0), abs(peak_hz(y) - 880.0)) < 5.0


def test_pcm_via_pyav_matches_soundfile_samples(tmp_path):
    """The PyAV path converts ints like libsndfile: FFmpeg's s16 frames of a PCM_16 wav give the
    same floats as soundfile."""
    data = np.round(noise(0.3, 44_100, 2, amplitude=0.5, seed=3) * 32767) / 32768
    wav = write_audio(tmp_path / "n.wav", data, 44_100, subtype="PCM_16")
    import av  # noqa: PLC0415

    from dymn_cli.audio.pyav_backend import frame_to_array  # noqa: PLC0415 - checks the int16 path of the converter

    with av.open(str(wav)) as container:
        frames = [frame_to_array(f) for f in container.decode(container.streams.audio[0])]
    assert np.array_equal(np.concatenate(frames), sf.read(wav, dtype="float32", always_2d=True)[0])


def test_audio_info(tmp_path):
    wav = make_audio_file(tmp_path / "a.wav", seconds=0.5, sample_rate=44_100, channels=2, subtype="PCM_24")
    info = audio_info(wav)
    assert info == AudioInfo(0.5, 44_100, 2, 22_050, "WAV", "PCM_24", "soundfile")
    mp3 = audio_info(make_audio_file(tmp_path / "a.mp3", seconds=0.5, sample_rate=44_100))
    assert (mp3.format, mp3.frames, mp3.decoder) == ("MP3", 22_050, "soundfile")
    m4a = audio_info(make_audio_file(tmp_path / "a.m4a", seconds=0.5, sample_rate=44_100, channels=2))
    assert (m4a.frames, m4a.sample_rate, m4a.channels, m4a.codec, m4a.decoder) == (22_050, 44_100, 2, "aac", "pyav")
    assert m4a.duration_seconds == pytest.approx(0.5)
    webm = audio_info(make_audio_file(tmp_path / "a.webm", seconds=0.5, sample_rate=48_000))
    assert webm.codec == "opus" and abs(webm.duration_seconds - 0.5) < 0.03
    video = audio_info(make_video_file(tmp_path / "v.mp4", seconds=0.5))
    assert (video.codec, video.sample_rate, video.frames) == ("aac", 48_000, 24_000)
    assert audio_info(wav.read_bytes()) == info


def test_audio_extensions():
    assert all(e == e.lower() and e.startswith(".") for e in AUDIO_EXTENSIONS)
    required = "wav flac ogg oga opus mp3 m4a aac wma aif aiff aifc au snd caf w64 mka mp4 m4v mov mkv webm avi 3gp amr wv ac3"
    assert {f".{e}" for e in required.split()} <= AUDIO_EXTENSIONS
    assert not {".ts", ".txt", ".json", ".jpg", ".png", ".pdf", ".mid"} & AUDIO_EXTENSIONS
    assert is_audio_path("A/B/Song.MP3") and is_audio_path(Path("clip.webm")) and not is_audio_path("notes.txt")


def test_audio_extensions_are_readable():
    """Every extension names a format libsndfile or this build of FFmpeg can demux."""
    import av

    libsndfile = {"." + e.lower() for e in ("wav", "flac", "ogg", "mp3", "aiff", "au", "caf", "w64", "rf64", "voc")}
    libsndfile |= {".wave", ".oga", ".opus", ".aif", ".aifc", ".snd"}
    ffmpeg = {
        ".m4a": "mp4",
        ".m4b": "mp4",
        ".m4r": "mp4",
        ".mp4": "mp4",
        ".m4v": "mp4",
        ".mov": "mov",
        ".3gp": "3gp",
        ".3g2": "3g2",
        ".aac": "aac",
        ".wma": "asf",
        ".wmv": "asf",
        ".asf": "asf",
        ".mka": "matroska",
        ".mkv": "matroska",
        ".webm": "webm",
        ".weba": "webm",
        ".amr": "amr",
        ".awb": "amr",
        ".3ga": "3gp",
        ".wv": "wv",
        ".ac3": "ac3",
        ".eac3": "eac3",
        ".dts": "dts",
        ".mp2": "mp2",
        ".ape": "ape",
        ".tta": "tta",
        ".mpc": "mpc",
        ".spx": "ogg",
        ".ra": "rm",
        ".avi": "avi",
        ".flv": "flv",
        ".mpg": "mpeg",
        ".mpeg": "mpeg",
    }
    assert AUDIO_EXTENSIONS <= libsndfile | set(ffmpeg)
    assert all(fmt in av.formats_available for fmt in ffmpeg.values())
