"""Event exports (Audacity, Raven), output naming, the embeddings archive and pictures, through the API."""

from __future__ import annotations

import csv
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from dymn_cli.errors import UsageError
from dymn_cli.events import EventSettings, detect_events
from dymn_cli.run.inputs import Input
from dymn_cli.tagger import TagFailure, TagResult
from dymn_cli.writers.base import OutputOptions
from dymn_cli.writers.editors import AudacityWriter, RavenWriter, per_input_target
from dymn_cli.writers.embeddings import EmbeddingWriter, embedding_arrays, save_embeddings
from dymn_cli.writers.registry import WRITERS, writer_class

HEADER = {"model": "test", "settings": {"sample_rate": 32_000}}
DOG, SPEECH = 74, 0


def constructed(source: str, *, duration: float = 30.0, n_dims: int = 6, seed: int = 0) -> TagResult:
    """1 s windows every 0.5 s; Dog from 5 to 9 s, Speech from 20 s to the end."""
    starts = np.arange(0.0, duration - 0.5, 0.5)
    ends = starts + 1.0
    scores = np.full((len(starts), 527), 0.05, dtype=np.float32)
    scores[(starts < 9) & (ends > 5), DOG] = 0.8
    scores[(ends > 20), SPEECH] = 0.95
    embeddings = np.random.default_rng(seed).standard_normal((len(starts), n_dims)).astype(np.float32)
    return TagResult(source, duration, scores.mean(axis=0), starts, ends, scores, embeddings)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_formats_are_registered_and_not_guessed_from_txt():
    assert WRITERS["audacity"] is AudacityWriter and WRITERS["raven"] is RavenWriter
    assert writer_class("raven", None, stdout_is_terminal=False) is RavenWriter
    with pytest.raises(UsageError, match="extension"):
        writer_class(None, Path("labels.txt"), stdout_is_terminal=False)


def test_audacity_label_track_next_to_the_input(tmp_path):
    source = str(tmp_path / "rec" / "walk.wav")
    writer = AudacityWriter(None, options=OutputOptions(events=EventSettings(threshold=0.5)), header=HEADER)
    result = constructed(source)
    writer.write(result)
    writer.write(TagFailure(str(tmp_path / "rec" / "bad.wav"), "broken"))
    writer.close()
    target = tmp_path / "rec" / "walk.labels.txt"
    assert writer.written == [target] and not (tmp_path / "rec" / "bad.labels.txt").exists()
    rows = [line.split("\t") for line in target.read_text().splitlines()]
    expected = detect_events(result, threshold=0.5)
    assert [(float(a), float(b), label) for a, b, label in rows] == [(e.start, e.end, e.label) for e in expected]
    assert rows == [["5.000000", "9.000000", "Dog"], ["20.000000", "30.000000", "Speech"]]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_raven_selection_table_under_output_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "tables"
    options = OutputOptions(events=EventSettings(threshold=0.5, min_duration=2.0), classes=[DOG, SPEECH])
    writer = RavenWriter(out, options=options, header=HEADER)
    result = constructed(os.path.join("field", "day1", "walk.flac"))
    writer.write(result)
    writer.close()
    target = out / "field" / "day1" / "walk.Table.1.selections.txt"
    with target.open(newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    assert list(rows[0])[:7] == [
        "Selection",
        "View",
        "Channel",
        "Begin Time (s)",
        "End Time (s)",
        "Low Freq (Hz)",
        "High Freq (Hz)",
    ]
    expected = detect_events(result, threshold=0.5, min_duration=2.0, classes=[DOG, SPEECH])
    assert len(rows) == len(expected) == 2
    for number, (row, event) in enumerate(zip(rows, expected), start=1):
        assert int(row["Selection"]) == number and row["View"] == "Spectrogram 1" and row["Channel"] == "1"
        assert float(row["Begin Time (s)"]) == pytest.approx(event.start, abs=1e-6)
        assert float(row["End Time (s)"]) == pytest.approx(event.end, abs=1e-6)
        assert float(row["Low Freq (Hz)"]) == 0.0 and float(row["High Freq (Hz)"]) == 16000.0
        assert row["Label"] == event.label and row["MID"] == event.mid
        assert float(row["Peak Score"]) == pytest.approx(event.peak, abs=1e-6)
        assert float(row["Mean Score"]) == pytest.approx(event.mean, abs=1e-6)


def test_per_input_names_mirror_and_never_collide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    used: dict[Path, str] = {}
    out = Path("out")
    assert per_input_target("a/x.wav", suffix=".txt", directory=out, used=used) == out / "a" / "x.txt"
    assert per_input_target("a/x.flac", suffix=".txt", directory=out, used=used) == out / "a" / "x.flac.txt"
    assert per_input_target("a/x.wav", suffix=".txt", directory=out, used=used) == out / "a" / "x.txt"  # same input, same file
    assert per_input_target("b/../a/x.mp3", suffix=".txt", directory=out, used=used) == out / "a" / "x.mp3.txt"
    elsewhere = Path(os.path.abspath(os.sep)) / "data" / "y.wav"
    assert per_input_target(str(elsewhere), suffix=".txt", directory=out) == out / "data" / "y.txt"
    assert per_input_target("-", suffix=".txt", directory=out) == out / "stdin.txt"
    assert per_input_target("a/x.wav", suffix=".txt", directory=None) == Path("a/x.txt")
    with pytest.raises(UsageError, match="--output-dir"):
        per_input_target("-", suffix=".txt", directory=None)


def test_stdin_needs_an_output_dir():
    with pytest.raises(UsageError, match="--output-dir"):
        AudacityWriter.validate(options=OutputOptions(), target=None, inputs=[Input("a.wav"), Input("-")])
    AudacityWriter.validate(options=OutputOptions(), target=Path("somewhere"), inputs=[Input("-")])


def test_csv_cannot_hold_timeline_and_events():
    from dymn_cli.writers.formats.csv_table import CsvWriter

    with pytest.raises(UsageError, match="one table"):
        CsvWriter.validate(options=OutputOptions(timeline=True, events=EventSettings()), target=None, inputs=[])


def test_embedding_archive(tmp_path):
    results = [constructed("a.wav", seed=1), constructed("b.wav", duration=12.0, seed=2)]
    sink = EmbeddingWriter(tmp_path / "emb.npz", windows=True)
    sink.write(results[0])
    sink.write(TagFailure("bad.wav", "broken"))
    sink.write(results[1])
    sink.close()
    with np.load(tmp_path / "emb.npz") as archive:
        assert set(archive.files) == {
            "paths",
            "clip_embeddings",
            "window_embeddings",
            "window_path_index",
            "window_starts",
            "window_ends",
        }
        assert list(archive["paths"]) == ["a.wav", "b.wav"]
        np.testing.assert_allclose(archive["clip_embeddings"], np.stack([r.embedding for r in results]), rtol=1e-6)
        np.testing.assert_array_equal(archive["window_embeddings"], np.concatenate([r.embeddings for r in results]))
        counts = [len(r.starts) for r in results]
        np.testing.assert_array_equal(archive["window_path_index"], np.repeat([0, 1], counts))
        # the window record of the timelines (`TagResult.window_times`): `end` clipped to the file's end
        np.testing.assert_array_equal(archive["window_starts"], np.concatenate([r.window_times()[0] for r in results]))
        np.testing.assert_array_equal(archive["window_ends"], np.concatenate([r.window_times()[1] for r in results]))
        assert archive["window_ends"].max() <= max(r.duration for r in results)
    clip_only = save_embeddings(results, tmp_path / "clips.npz")
    with np.load(clip_only) as archive:
        assert set(archive.files) == {"paths", "clip_embeddings"} and archive["clip_embeddings"].shape == (2, 6)
    empty = embedding_arrays([], windows=True)
    assert empty["clip_embeddings"].shape == (0, 0) and empty["paths"].shape == (0,)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_plot_is_a_png_of_sane_size(tmp_path):
    pytest.importorskip("matplotlib")
    import soundfile

    from dymn_cli.writers.plot import loudness, loudness_of_waveform, plot_timeline

    rate = 32_000
    t = np.arange(30 * rate) / rate
    wave = np.where((t > 5) & (t < 9), 0.5 * np.sin(2 * np.pi * 440 * t), 0.005 * np.sin(2 * np.pi * 100 * t))
    source = tmp_path / "walk.wav"
    soundfile.write(source, wave.astype(np.float32), rate)
    result = constructed(str(source))
    times, db = loudness(source)
    assert times[0] > 0 and times[-1] < 30 and len(times) == len(db)
    assert db[(times > 6) & (times < 8)].min() > -10 > -40 > db[(times > 12) & (times < 28)].max()
    same_times, same_db = loudness_of_waveform(wave, rate)
    np.testing.assert_allclose(same_db, db, atol=0.05)  # the file is 16-bit PCM
    target = plot_timeline(result, tmp_path / "pics" / "walk.png", top=5, events=detect_events(result, threshold=0.5))
    width, height = png_size(target)
    assert 800 <= width <= 2000 and 300 <= height <= 1500
    assert target.stat().st_size < 200_000
    import matplotlib.image

    assert matplotlib.image.imread(target).shape[:2] == (height, width)
    # No file to re-read: no loudness panel, a smaller picture.
    array_result = constructed("<array>")
    _, bare_height = png_size(plot_timeline(array_result, tmp_path / "bare.png", top=5))
    assert bare_height < height


def test_missing_matplotlib_is_a_usage_error(monkeypatch):
    from dymn_cli.writers.plot import require_matplotlib

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match=r"pip install 'dymn-cli\[plot\]'"):
        require_matplotlib()


def test_command_line_mapping_checks_combinations_early(tmp_path):
    from dymn_cli.run.options import build_output_options, build_sinks, writer_target

    options = build_output_options(format="raven", top=10, threshold=None, min_duration=2.0, labels="Dog")
    assert options.events == EventSettings(threshold=0.5, min_duration=2.0) and options.classes[0] == DOG
    assert build_output_options(format="json", top=5, threshold=0.3, events=True).events == EventSettings(threshold=0.3)
    assert build_output_options(format="json", top=5, threshold=0.3).events is None
    assert writer_target(format="raven", output=None, output_dir=tmp_path) == tmp_path
    assert writer_target(format="json", output=tmp_path / "x.json", output_dir=None) == tmp_path / "x.json"
    with pytest.raises(UsageError, match="--output-dir"):
        writer_target(format="audacity", output=tmp_path / "x.txt", output_dir=None)
    with pytest.raises(UsageError, match="--resume"):
        build_sinks(options=options, paths=["a.wav"], embeddings=tmp_path / "e.npz", resume=True)
    pytest.importorskip("matplotlib")
    with pytest.raises(UsageError, match="folder"):
        build_sinks(options=options, paths=[str(tmp_path)], plot=tmp_path / "x.png")
    with pytest.raises(UsageError, match="folder"):
        build_sinks(options=options, paths=["a.wav", "b.wav"], plot=tmp_path / "x.png")
    (sink,) = build_sinks(options=options, paths=["a.wav", "b.wav"], plot=tmp_path / "pics")
    assert not sink.single
