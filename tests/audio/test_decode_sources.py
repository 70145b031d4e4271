"""dymn_cli.audio.decode's sources: bytes, pipes, file objects (from their position), a subprocess's
stdin, named pipes; PyAV imported only when needed, and FFmpeg never given a protocol URL.

Real files written in tmp dirs by `audio_factory`; no mocks.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from dymn_cli.audio.decode import (
    audio_info,
    load_audio,
    stream_audio,
)
from tests.audio.decode_support import collect
from tests.audio_factory import (
    make_audio_file,
)


def _pipe_reader(data: bytes):
    read_fd, write_fd = os.pipe()

    def feed():
        with os.fdopen(write_fd, "wb") as w:
            w.write(data)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return os.fdopen(read_fd, "rb"), thread


@pytest.mark.parametrize("ext", [".wav", ".mp3", ".m4a", ".webm"])
def test_bytes_pipes_and_file_objects(tmp_path, ext):
    path = make_audio_file(tmp_path / f"a{ext}", seconds=0.4, sample_rate=48_000 if ext == ".webm" else 44_100, channels=2)
    ref = load_audio(path)
    data = path.read_bytes()
    assert np.array_equal(load_audio(data), ref)
    assert np.array_equal(load_audio(bytearray(data)), ref)
    assert np.array_equal(load_audio(memoryview(data)), ref)
    assert np.array_equal(load_audio(io.BytesIO(data)), ref)
    with open(path, "rb") as fh:
        assert np.array_equal(load_audio(fh), ref)
    assert np.array_equal(load_audio(str(path)), ref)
    reader, thread = _pipe_reader(data)
    with reader:
        assert not reader.seekable()
        assert np.array_equal(load_audio(reader), ref)
    thread.join()
    reader, thread = _pipe_reader(data)
    with reader:
        assert np.array_equal(collect(stream_audio(reader, block_seconds=0.1)), ref)
    thread.join()
    assert audio_info(data).channels == 2


def test_file_object_is_read_from_its_position(tmp_path):
    path = make_audio_file(tmp_path / "a.wav", seconds=0.2)
    blob = b"JUNK" + path.read_bytes()
    fh = io.BytesIO(blob)
    fh.read(4)
    assert np.array_equal(load_audio(fh), load_audio(path))


@pytest.mark.slow
def test_stdin_of_a_subprocess(tmp_path):
    path = make_audio_file(tmp_path / "a.flac", seconds=0.3, sample_rate=22_050, channels=2)
    code = "import sys\nfrom dymn_cli.audio.decode import load_audio\ny = load_audio(sys.stdin.buffer)\nprint(len(y), float(y.sum()))\n"
    out = subprocess.run([sys.executable, "-c", code], input=path.read_bytes(), capture_output=True, check=True)
    y = load_audio(path)
    n, total = out.stdout.split()
    assert int(n) == len(y) and float(total) == float(y.sum())


def test_named_pipe_path(tmp_path):
    path = make_audio_file(tmp_path / "a.wav", seconds=0.2)
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    data = path.read_bytes()

    def feed():
        with open(fifo, "wb") as w:
            w.write(data)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    assert np.array_equal(load_audio(fifo), load_audio(path))
    thread.join()


@pytest.mark.slow
def test_pyav_is_imported_only_when_needed(tmp_path):
    wav = make_audio_file(tmp_path / "a.wav", seconds=0.1)
    m4a = make_audio_file(tmp_path / "a.m4a", seconds=0.1)
    code = (
        "import sys\nfrom dymn_cli.audio.decode import load_audio\n"
        f"load_audio({str(wav)!r}); print('av' in sys.modules)\n"
        f"load_audio({str(m4a)!r}); print('av' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_ffmpeg_never_sees_a_protocol_url(tmp_path):
    """File names are opened by Python, so 'concat:' or a colon in a name is just a name."""
    src = make_audio_file(tmp_path / "a.m4a", seconds=0.2)
    odd = tmp_path / "concat:a.m4a"
    odd.write_bytes(src.read_bytes())
    assert np.array_equal(load_audio(odd), load_audio(src))
