"""dymn_cli.audio.decode's error cases: missing, unreadable, empty, random and text inputs each one
AudioError naming the input; truncated and damaged files keep what decoded (with a warning where
something was lost); no audio, zero samples, non-finite samples, not a source.

Real files written in tmp dirs by `audio_factory`; no mocks.
"""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest

from dymn_cli.audio.decode import (
    AudioDecodeWarning,
    audio_info,
    load_audio,
    stream_audio,
)
from dymn_cli.errors import AudioError
from tests.audio.decode_support import SR, collect
from tests.audio_factory import (
    make_audio_file,
    make_video_file,
    noise,
    random_bytes_file,
    truncate_file,
    write_audio,
)
from tests.permissions import mode_respecting_prefix


def assert_audio_error(source, name: str, match: str, *, info: bool = True) -> None:
    """load_audio, stream_audio and (unless `info` is false: the header is fine) audio_info raise
    AudioError with a one-line message naming the input."""
    for fn in (load_audio, lambda s: collect(stream_audio(s))) + ((audio_info,) if info else ()):
        with pytest.raises(AudioError, match=match) as err:
            fn(source)
        message = str(err.value)
        assert name in message and "\n" not in message, message


def test_missing_file(tmp_path):
    assert_audio_error(tmp_path / "nope.wav", "nope.wav", "file not found")
    assert_audio_error(str(tmp_path / "nodir" / "nope.wav"), "nope.wav", "file not found")


def test_directory(tmp_path):
    (tmp_path / "folder.wav").mkdir()
    assert_audio_error(tmp_path / "folder.wav", "folder.wav", "is a directory")


@pytest.mark.slow
def test_permission_denied(tmp_path):
    """In a subprocess, so that file modes can be made to count for root as well."""
    prefix = mode_respecting_prefix()
    if prefix is None:
        pytest.skip("cannot run a process here for which file modes count")
    path = make_audio_file(tmp_path / "secret.wav", seconds=0.1)
    path.chmod(0)
    check = (
        "import sys\n"
        "from dymn_cli.audio.decode import audio_info, load_audio, stream_audio\n"
        "from dymn_cli.errors import AudioError\n"
        "for read in (load_audio, lambda p: list(stream_audio(p)), audio_info):\n"
        "    try:\n"
        "        read(sys.argv[1])\n"
        "    except AudioError as err:\n"
        "        print(err)\n"
    )
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", check, str(path)], capture_output=True, text=True)
    finally:
        path.chmod(0o644)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{path}: permission denied"] * 3


def test_empty_inputs(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    assert_audio_error(tmp_path / "zero.wav", "zero.wav", r"empty file \(0 bytes\)")
    assert_audio_error(b"", "<bytes>", "empty input")
    assert_audio_error(io.BytesIO(b""), "<stream>", "empty input")


@pytest.mark.parametrize("name", ["noise.mp3", "noise.wav", "noise.bin", "noise.m4a"])
def test_random_bytes(tmp_path, name):
    path = random_bytes_file(tmp_path / name, 20_000, seed=len(name))
    assert_audio_error(path, name, "not a readable audio file")


def test_text_named_mp3(tmp_path):
    path = tmp_path / "lyrics.mp3"
    path.write_text("la la la, not audio at all\n" * 200)
    assert_audio_error(path, "lyrics.mp3", "not a readable audio file")
    assert_audio_error(path.read_bytes(), "<bytes>", "not a readable audio file")


def test_text_mode_stream():
    with pytest.raises(AudioError, match="text mode"):
        load_audio(io.StringIO("RIFF"))


def test_name_overrides_the_label():
    with pytest.raises(AudioError, match=r"^<stdin>: not a readable audio file"):
        load_audio(b"definitely not audio" * 50, name="<stdin>")


def test_truncated_wav_keeps_the_intact_part(tmp_path):
    path = make_audio_file(tmp_path / "cut.wav", seconds=1.0, sample_rate=44_100, subtype="PCM_16")
    truncate_file(path, 44 + 2 * 22_050)  # header + half the data: the header still says 1 s
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = load_audio(path)
    assert len(y) == 16_000
    assert np.array_equal(collect(stream_audio(path)), y)


def test_truncated_flac_warns_and_keeps_what_decoded(tmp_path):
    path = write_audio(tmp_path / "cut.flac", noise(3.0, 44_100, 2, amplitude=0.5, seed=9), 44_100)
    truncate_file(path, 0.5)
    with pytest.warns(AudioDecodeWarning, match="cut.flac: decoding stopped after"):
        y = load_audio(path)
    assert 0.5 * SR < len(y) < 2.0 * SR
    with pytest.warns(AudioDecodeWarning):
        assert np.array_equal(collect(stream_audio(path, block_seconds=0.25)), y)


def test_truncated_wma_skips_the_broken_packet(tmp_path):
    path = make_audio_file(tmp_path / "cut.wma", seconds=1.0, sample_rate=44_100, channels=2, kind="noise")
    truncate_file(path, 0.5)
    with pytest.warns(AudioDecodeWarning, match=r"cut.wma: skipped 1 damaged packet that could not be decoded"):
        y = load_audio(path)
    assert 0.3 * SR < len(y) < 0.7 * SR
    with pytest.warns(AudioDecodeWarning):
        assert np.array_equal(collect(stream_audio(path, block_seconds=0.1)), y)


def test_damage_in_the_middle_is_skipped(tmp_path):
    path = make_audio_file(tmp_path / "scratched.m4a", seconds=2.0, sample_rate=44_100, channels=2, kind="noise")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 300] = np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with pytest.warns(AudioDecodeWarning, match="scratched.m4a: .* damaged packet"):
        y = load_audio(path)
    assert len(y) > 1.9 * SR  # only the damaged AAC frames (23 ms each) are missing


def test_truncated_mp3_keeps_the_intact_part(tmp_path):
    path = write_audio(tmp_path / "cut.mp3", noise(2.0, 44_100, 2, amplitude=0.5, seed=9), 44_100)
    truncate_file(path, 0.5)
    y = load_audio(path)
    assert 0.6 * SR < len(y) < 1.4 * SR


def test_truncated_beyond_use(tmp_path):
    m4a = make_audio_file(tmp_path / "cut.m4a", seconds=0.5)  # the index (moov) is at the end
    truncate_file(m4a, 0.5)
    assert_audio_error(m4a, "cut.m4a", "not a readable audio file")
    wav = make_audio_file(tmp_path / "head.wav", seconds=0.5)
    truncate_file(wav, 30)  # not even the whole header
    assert_audio_error(wav, "head.wav", "damaged or truncated")
    ac3 = make_audio_file(tmp_path / "cut.ac3", seconds=0.5, sample_rate=48_000)
    truncate_file(ac3, 0.05)
    assert_audio_error(ac3, "cut.ac3", "cannot decode the audio", info=False)


def test_video_without_audio(tmp_path):
    path = make_video_file(tmp_path / "silent-film.mp4", with_audio=False)
    assert_audio_error(path, "silent-film.mp4", "no audio stream")


def test_zero_samples(tmp_path):
    path = write_audio(tmp_path / "nothing.wav", np.zeros((0, 1)), 44_100)
    for fn in (load_audio, lambda s: collect(stream_audio(s))):
        with pytest.raises(AudioError, match="nothing.wav: contains no audio samples"):
            fn(path)
    assert audio_info(path).frames == 0  # the header is fine: info does not decode


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_non_finite_samples(tmp_path, bad, subtype):
    data = noise(0.5, 44_100, 2, seed=1)
    data[10_000, 1] = bad
    path = write_audio(tmp_path / "broken.wav", data, 44_100, subtype=subtype)
    for fn in (load_audio, lambda s: collect(stream_audio(s, block_seconds=0.1))):
        with pytest.raises(AudioError, match="broken.wav: contains NaN or infinite samples"):
            fn(path)


def test_not_a_source():
    with pytest.raises(AudioError, match="not a path, bytes or binary file object"):
        load_audio(12345)  # type: ignore[arg-type]
