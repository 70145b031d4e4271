"""`label_inputs`, the run behind `dymn-tag`, with a stand-in tagger (no model): what it tags, writes,
skips and reports, and when it builds the tagger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dymn_cli.errors import UsageError
from dymn_cli.run.runner import RunSettings, label_inputs
from dymn_cli.writers.base import OutputOptions
from tests.audio_factory import make_audio_file
from tests.support import FakeTagger


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "in"
    for name in ("b.wav", "a.wav", "sub/c.wav", "broken.wav"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        make_audio_file(root / name, seconds=0.2)
    return root


def records(path: Path) -> list[dict]:
    """The input records of a JSONL file (every line), less the model and settings each carries."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert all("path" in line and "settings" in line and "model" in line for line in lines)
    return [{k: v for k, v in line.items() if k not in ("model", "settings")} for line in lines]


def run(paths, **kwargs):
    kwargs.setdefault("settings", RunSettings(workers=0, decode_first=False))
    kwargs.setdefault("options", OutputOptions(top=2))
    return label_inputs([str(p) for p in paths], **kwargs)


def test_a_folder_is_tagged_in_walk_order_with_failures_recorded_and_counted(folder, tmp_path):
    target = tmp_path / "out.jsonl"
    summary = run([folder], tagger=FakeTagger(), output=target)
    written = records(target)
    assert [Path(r["path"]).relative_to(folder).as_posix() for r in written] == ["a.wav", "b.wav", "broken.wav", "sub/c.wav"]
    assert "error" in written[2] and all(len(r["labels"]) == 2 for r in written if "error" not in r)
    assert (summary.tagged, summary.failed, summary.exit_code) == (3, 1, 1)


def test_the_tagger_is_built_only_after_the_inputs_and_options_are_checked(folder, tmp_path):
    built = []

    def factory() -> FakeTagger:
        built.append(True)
        return FakeTagger()

    with pytest.raises(UsageError, match="no such file or folder"):
        run([tmp_path / "nowhere"], tagger=factory, output=tmp_path / "out.jsonl")
    with pytest.raises(UsageError, match="--resume"):
        run([folder], tagger=factory, resume=True)  # --resume without an output file
    assert built == []
    run([folder], tagger=factory, output=tmp_path / "out.jsonl")
    assert built == [True]


def test_a_factory_that_makes_something_else_is_refused(folder, tmp_path):
    with pytest.raises(TypeError, match="not an AudioTagger"):
        run([folder], tagger=lambda: object(), output=tmp_path / "out.jsonl")


def test_resume_skips_what_the_output_holds_and_keeps_the_input_order(folder, tmp_path):
    target = tmp_path / "out.jsonl"
    run([folder / "b.wav"], tagger=FakeTagger(), output=target)
    summary = run([folder], tagger=FakeTagger(), output=target, resume=True)
    assert summary.skipped == 1 and summary.tagged == 2
    assert sorted(Path(r["path"]).name for r in records(target)) == ["a.wav", "b.wav", "broken.wav", "c.wav"]


def test_a_missing_path_is_a_failed_input_in_its_place(folder, tmp_path):
    """Counted and recorded like any input that fails, whether named, walked or listed (#13); the
    tagger never sees it."""
    target = tmp_path / "out.jsonl"
    summary = run([tmp_path / "missing.wav", folder / "a.wav"], tagger=FakeTagger(), output=target)
    assert (summary.tagged, summary.failed, summary.exit_code, summary.problems) == (1, 1, 1, [])
    assert records(target)[0] == {"path": str(tmp_path / "missing.wav"), "error": "file not found"}


def test_each_outcome_reaches_the_extra_sinks_and_the_callbacks(folder, tmp_path):
    class Sink:
        def __init__(self) -> None:
            self.written, self.closed = [], False

        def write(self, outcome) -> None:
            self.written.append(outcome.source)

        def close(self) -> None:
            self.closed = True

    sink, seen, started = Sink(), [], []
    run(
        [folder],
        tagger=FakeTagger(),
        output=tmp_path / "o.jsonl",
        extra_sinks=[sink],
        on_outcome=lambda o: seen.append(o.source),
        on_start=lambda todo: started.append(len(todo)),
    )
    assert sink.closed and sink.written == seen and len(seen) == 4 and started == [4]
