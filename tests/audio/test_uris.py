"""Inputs named by URI, through pyarrow's own `file://` filesystem: listing in folder-walk order,
reading, and what a URI that names nothing or cannot be read comes to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dymn_cli.audio.decode import load_audio
from dymn_cli.audio.uris import is_uri, list_uri, read_uri
from dymn_cli.errors import AudioError
from dymn_cli.run.inputs import InputProblem, expand_inputs
from tests.audio_factory import make_audio_file

pytest.importorskip("pyarrow.fs")


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "audio"
    for name in ("b.wav", "a.flac", "sub/c.wav", "sub/deeper/d.ogg", "zz/e.mp3"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        make_audio_file(root / name, seconds=0.2, seed=len(name))
    (root / "notes.txt").write_text("not audio")
    (root / "sub" / "cover.jpg").write_bytes(b"\xff\xd8 not audio either")
    return root


def uri(path: Path) -> str:
    return path.as_uri()  # file:///...


def test_what_counts_as_a_uri():
    assert is_uri("s3://bucket/audio") and is_uri("file:///tmp/a.wav") and is_uri("gs://b/x.flac")
    assert not is_uri("C://music/a.wav")  # a one-letter scheme is a Windows drive
    assert not is_uri("recordings/a.wav") and not is_uri("-") and not is_uri(None) and not is_uri(Path("s3://x"))


def test_a_folder_uri_lists_its_audio_files_in_folder_walk_order(tree):
    listed = list_uri(uri(tree))
    names = [entry.removeprefix(uri(tree) + "/") for entry in listed]
    # per folder: its files by name, then its subfolders by name (what `dymn-tag FOLDER` does locally)
    assert names == ["a.flac", "b.wav", "sub/c.wav", "sub/deeper/d.ogg", "zz/e.mp3"]
    assert list_uri(uri(tree), recursive=False) == [f"{uri(tree)}/a.flac", f"{uri(tree)}/b.wav"]


def test_a_file_uri_lists_itself_and_a_missing_one_nothing(tree):
    assert list_uri(uri(tree / "b.wav")) == [uri(tree / "b.wav")]
    assert list_uri(uri(tree / "missing")) is None


def test_read_uri_gives_the_files_bytes_which_decode_like_the_file(tree):
    data = read_uri(uri(tree / "sub" / "c.wav"))
    assert data == (tree / "sub" / "c.wav").read_bytes()
    np.testing.assert_array_equal(load_audio(data), load_audio(tree / "sub" / "c.wav"))


def test_read_uri_failures_are_one_line_naming_the_uri(tree):
    with pytest.raises(AudioError, match=r"^file:///.*/missing\.wav: file not found$"):
        read_uri(uri(tree / "missing.wav"))
    (tree / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)$"):
        read_uri(uri(tree / "empty.wav"))


def test_a_run_expands_uris_beside_paths_and_reports_those_that_name_nothing(tree):
    problems: list[InputProblem] = []
    inputs = list(expand_inputs([uri(tree / "sub"), str(tree / "b.wav"), uri(tree / "nothing")], problems=problems))
    assert [i.path for i in inputs] == [f"{uri(tree / 'sub')}/c.wav", f"{uri(tree / 'sub')}/deeper/d.ogg", str(tree / "b.wav")]
    assert problems == [InputProblem(uri(tree / "nothing"), "no such file or folder")]
    # from a file list (problems=None) a URI that names nothing is passed on, to fail as an input
    assert [i.path for i in expand_inputs([uri(tree / "nothing")], problems=None)] == [uri(tree / "nothing")]
