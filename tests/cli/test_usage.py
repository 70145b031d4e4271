"""The command line as a user meets it, through the real entry point: help, usage errors before torch
is imported, paths named like commands, the offline message, inputs without audio."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dymn_cli.cli import metavars, panels
from dymn_cli.cli.choices import Int8Mode, OutputFormat
from dymn_cli.cli.commands import COMMANDS
from dymn_cli.cli.main import command_for
from dymn_cli.cli.tag import EXAMPLES
from dymn_cli.export.quantize import INT8_MODES
from dymn_cli.writers.registry import WRITERS
from tests.audio_factory import sine, write_audio
from tests.support import DYMN04_WEIGHTS, DYMN_TAG, SAFETY_NET

WEIGHTS = str(DYMN04_WEIGHTS)


def run(
    args: list[str], *, cwd: Path | None = None, columns: int = 100, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "TERMINAL_WIDTH": str(columns)}
    command = [sys.executable, *python_flags, "-m", "dymn_cli", *args] if python_flags else [DYMN_TAG, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=SAFETY_NET)


def wav(path: Path, seconds: float = 1.0, rate: int = 16_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_audio(path, sine(seconds, rate), rate)


def imported(importtime_stderr: str) -> set[str]:
    """The modules a `python -X importtime` run imported."""
    return {m.group(1).strip() for m in re.finditer(r"^import time:.*\|\s*(\S+)\s*$", importtime_stderr, re.MULTILINE)}


def test_help_groups_the_options_in_panels_and_lists_every_command():
    done = run(["--help"])
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for title in (*panels.ORDER, "Commands", "Examples"):
        assert f"─ {title} ─" in text, title
    positions = [text.index(f"─ {title} ─") for title in panels.ORDER]
    assert positions == sorted(positions)  # the panels come in the order of panels.ORDER
    commands = text[text.index("─ Commands ─") : text.index("─ Examples ─")]
    for name in ("tag", *COMMANDS):
        assert re.search(rf"^│ {name}\b", commands, re.MULTILINE), name
    for metavar in ("SECONDS", "FILE", "MODEL", "K|all", "I/N", "SCORE"):
        assert f" {metavar} " in text, metavar
    for python_type in ("<list[str]>", "<float range>", "<bool>", "<str>", "<path>", "<int>"):
        assert python_type not in text
    assert max(len(line) for line in text.splitlines()) <= 100


@pytest.mark.parametrize("columns", [80, 160])
def test_examples_never_wrap_mid_command(columns):
    text = run(["-h"], columns=columns).stdout
    lines = text.splitlines()
    for command, meaning in EXAMPLES:
        assert any(command in line for line in lines), command  # each command whole, on one line
        assert any(meaning in line for line in lines), meaning


@pytest.mark.parametrize("command", ["", "tag", *COMMANDS])
def test_dash_h_works_on_every_command(command):
    done = run([command, "-h"] if command else ["-h"])
    assert done.returncode == 0, done.stderr
    usage = f"Usage: dymn-tag {command}".rstrip()
    assert usage in done.stdout
    assert "<list[" not in done.stdout


def test_format_choices_are_the_writers():
    assert {f.value for f in OutputFormat} == set(WRITERS)


def test_int8_mode_choices_are_the_quantiser_modes():
    assert [m.value for m in Int8Mode] == list(INT8_MODES)


BAD = [
    (["--format", "xml"], "--format: 'xml' is not one of"),
    (["--precision", "half"], "--precision: 'half' is not one of"),
    (["--aggregate", "median"], "--aggregate: 'median' is not one of 'mean', 'max'"),
    (["-m", "dymn20_as", "--aggregate", "median"], "--aggregate"),  # (an empty cache: no download first)
    (["--device", "gpu"], "--device: 'gpu' is not one of"),
    (["--top", "0"], "--top: '0' is neither a positive number nor 'all'"),
    (["--top", "many"], "--top: 'many'"),
    (["-t", "2"], "--threshold: 2 should be less than or equal to 1"),
    (["--window", "0"], "--window: 0 is not a positive number of seconds"),
    (["--hop", "-1"], "--hop: -1 is not a positive number of seconds"),
    (["--batch-size", "0"], "--batch-size: 0 should be greater than or equal to 1"),
    (["--workers", "-2"], "--workers: -2 should be greater than or equal to 0"),
    (["--min-duration", "-1"], "--min-duration"),
    (["--part-size", "0"], "--part-size"),
    (["--shard", "4/4"], "--shard: I counts from 0"),
    (["--tpo", "3"], "no such option: --tpo (did you mean --top?)"),
    (["--window", "ten"], "--window"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_value_fails_while_parsing_before_torch_is_imported(tmp_path, args, message):
    clip = wav(tmp_path / "a.wav")
    done = run([str(clip), *args], python_flags=("-X", "importtime"))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith("dymn-tag: error: "), errors
    assert message in errors[0]
    assert "torch" not in imported(done.stderr)
    assert not any(Path(os.environ["DYMN_CACHE_DIR"]).glob("*"))  # nothing was downloaded or locked


def test_subcommand_usage_errors_share_the_style():
    for args in (["download"], ["merge", "x.csv"], ["labels", "--nope"], ["models", "extra"]):
        done = run(args)
        assert done.returncode == 2, args
        assert done.stderr.startswith("dymn-tag: error: ") and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("models", ["tag", "models"]),
        ("labels", ["labels/"]),
        ("download", ["./download"]),
        ("merge", ["--", "merge"]),  # (after the options: every word after -- is a path)
        ("train", ["-q", "train"]),
        ("tag", ["tag", "tag"]),
    ],
)
def test_a_folder_named_like_a_command_is_reached_as_git_and_cargo_do(tmp_path, name, args):
    wav(tmp_path / name / "clip.wav")
    done = run(
        ["-w", WEIGHTS, "-f", "csv", "--top", "1", "-j", "0", *args]
        if args[0] == "--"
        else [*args, "-w", WEIGHTS, "-f", "csv", "--top", "1", "-j", "0"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert rows[0].startswith("path,") and len(rows) == 2
    assert "clip.wav" in rows[1]
    assert "note:" not in done.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_command_name_runs_the_command_with_a_note_where_a_path_has_its_name(tmp_path, name):
    wav(tmp_path / name / "clip.wav")
    done = run([name, "-h"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"Usage: dymn-tag {name}" in done.stdout
    note = f"dymn-tag: note: {name} runs the {name} command; to tag the path {name}, write ./{name} or dymn-tag tag {name}"
    assert done.stderr.splitlines() == [note]


def test_a_command_runs_where_no_such_path_exists(tmp_path):
    done = run(["labels", "dog"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Dog" in done.stdout and done.stderr == ""


@pytest.mark.parametrize("args", [[], ["-q"], ["--top", "3"]])
def test_nothing_to_tag_prints_the_usage_and_the_error(tmp_path, args):
    done = run(args, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == "Usage: dymn-tag [OPTIONS] PATHS..."
    assert all(name in lines[1] for name in ("tag", *COMMANDS)) and lines[2] == "Try 'dymn-tag -h' for help."
    assert lines[3:] == ["dymn-tag: error: no input: name files or folders, - for standard input, or --files-from"]


def test_every_command_uses_the_one_set_of_placeholders():
    """The same kind of value has one name everywhere (`--window SECONDS` in tag, train and search)."""
    seen: dict[str, tuple[str, str]] = {}
    for name in ("tag", *COMMANDS):
        for param in command_for(name).params:
            if getattr(param, "is_flag", False) or param.metavar is None:
                continue  # (a switch; a choice shows its values)
            assert param.metavar in metavars.ALL, (name, param.name, param.metavar)
            key, kind = max(param.opts, key=len), param.metavar.removesuffix("|all")  # (--top K|all, --top K)
            if key in seen:
                assert seen[key][1] == kind, (name, key, param.metavar, seen[key])
            seen[key] = (name, kind)


def test_offline_first_run_says_what_to_do_and_leaves_nothing_behind(tmp_path):
    clip = wav(tmp_path / "a.wav")
    cache = tmp_path / "cache"
    env_cache = {"DYMN_CACHE_DIR": str(cache), "DYMN_RELEASE_URL": "http://127.0.0.1:9/release/"}
    done = subprocess.run(
        [DYMN_TAG, str(clip), "-q"], capture_output=True, text=True, timeout=SAFETY_NET, env={**os.environ, **env_cache}
    )
    assert done.returncode == 1
    message = done.stderr.strip()
    assert message.count("\n") == 0 and message.startswith("dymn-tag: error: cannot download http://127.0.0.1:9/")
    for hint in ("--weights FILE", "DYMN_RELEASE_URL", "dymn-tag download dymn10_as", str(cache)):
        assert hint in message, hint
    assert not cache.exists() or not any(cache.iterdir())  # no lock, no partial file


@pytest.mark.parametrize("args", [["download", "dymn04_as"], ["labels", "dog"]])
def test_offline_advice_names_only_what_the_command_takes(tmp_path, args):
    env = {**os.environ, "DYMN_CACHE_DIR": str(tmp_path / "cache"), "DYMN_RELEASE_URL": "http://127.0.0.1:9/release/"}
    done = subprocess.run(
        [DYMN_TAG, *args, "-q"] if args[0] == "download" else [DYMN_TAG, *args],
        capture_output=True,
        text=True,
        timeout=SAFETY_NET,
        env=env,
    )
    if args[0] == "labels":  # (needs no model: nothing to advise)
        assert done.returncode == 0
        return
    assert done.returncode == 1
    message = done.stderr.strip()
    assert message.startswith("dymn-tag: error: cannot download http://127.0.0.1:9/release/dymn04_as.pt") and "\n" not in message
    assert "--weights" not in message and "DYMN_RELEASE_URL" in message


def test_a_folder_without_audio_is_reported_before_the_model_loads(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    done = run([str(tmp_path / "empty")], python_flags=("-X", "importtime"))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == [f"dymn-tag: error: {tmp_path / 'empty'}: no audio file found in this folder tree"]
    assert "torch" not in imported(done.stderr)


def test_an_empty_folder_beside_audio_is_reported_and_fails_the_run(tmp_path):
    clip = wav(tmp_path / "a.wav")
    (tmp_path / "empty").mkdir()
    done = run([str(clip), str(tmp_path / "empty"), "-w", WEIGHTS, "-f", "csv", "-j", "0"])
    assert done.returncode == 2
    assert f"{tmp_path / 'empty'}: no audio file found" in done.stderr
    assert "a.wav" in done.stdout


def test_a_model_and_weights_together_are_refused_never_one_ignored(tmp_path):
    clip = wav(tmp_path / "a.wav", seconds=0.5)
    done = run([str(clip), "--model", "mn04_as", "--weights", str(DYMN04_WEIGHTS)])
    assert done.returncode == 2 and "--model mn04_as and --weights name two networks" in done.stderr, done.stderr
