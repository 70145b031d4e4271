"""Shell completion as a user gets it: the scripts `dymn-tag --show-completion` prints, installed by
`--install-completion`, run by the real shells on a pseudo-terminal (bash always; zsh and fish where
installed), and the bash function driven directly for many command lines."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dymn_cli.cli.commands import COMMANDS
from dymn_cli.models.weights import REGISTRY
from tests.support import DYMN_TAG, SAFETY_NET
from tests.terminal import Terminal

BIN = str(Path(DYMN_TAG).parent)


def bash_completions(lines: list[str], cwd: Path) -> list[set[str]]:
    """COMPREPLY of the bash script's function for each line (the cursor at its end), called as bash
    calls it on Tab, all in one bash."""
    script = subprocess.run([DYMN_TAG, "--show-completion", "bash"], capture_output=True, text=True, check=True).stdout
    calls = []
    for line in lines:
        words = line.split(" ")
        quoted = " ".join(f"'{w}'" for w in words)
        calls.append(
            f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _dymn_tag_completion dymn-tag '{words[-1]}' '{words[-2]}'"
            '; printf "%s\\n" "${COMPREPLY[@]}"; echo "-- end --"'
        )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", "\n".join([script, *calls])],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        timeout=SAFETY_NET,
    )
    assert done.returncode == 0, done.stderr
    answers = done.stdout.split("-- end --\n")[: len(lines)]
    return [{w for w in answer.splitlines() if w} for answer in answers]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.wav").write_bytes(b"")
    (tmp_path / "models").mkdir()  # a folder named like a command
    (tmp_path / "notes.txt").write_text("x")
    return tmp_path


CASES = [
    ("dymn-tag ", {"tag", *COMMANDS, "audio", "models", "notes.txt"}),  # commands and paths
    ("dymn-tag mo", {"models"}),
    ("dymn-tag au", {"audio"}),
    ("dymn-tag --mod", {"--model"}),
    ("dymn-tag --model dymn", {"dymn04_as", "dymn10_as", "dymn20_as"}),
    ("dymn-tag -m mn40_as,dymn2", {"mn40_as,dymn20_as"}),  # an ensemble's next name
    ("dymn-tag --model = mn40", {"mn40_as", "mn40_as_ext"}),  # `--model=mn40`: bash splits at '='
    ("dymn-tag -f j", {"json", "jsonl"}),
    ("dymn-tag --aggregate m", {"mean", "max"}),
    ("dymn-tag a.wav -o no", {"notes.txt"}),
    ("dymn-tag --output-dir ", {"audio", "models"}),  # folders only
    ("dymn-tag train -d ", {"auto", "cpu", "cuda"}),
    ("dymn-tag export --int8-mode ", {"static", "weights"}),
    ("dymn-tag export --int8-mode w", {"weights"}),
    ("dymn-tag train --hid", {"--hidden"}),
    ("dymn-tag download mn4", {"mn40_as", "mn40_as_ext"}),
    ("dymn-tag --show-completion ", {"bash", "zsh", "fish"}),
    ("dymn-tag -- --mo", set()),  # after --, paths only
    ("dymn-tag models --x", set()),
]


@pytest.mark.slow  # (a dymn-tag per line)
def test_bash_completes_commands_options_models_and_paths(folder):
    lines = [line for line, _ in CASES] + ["dymn-tag -m ", "dymn-tag download "]
    expected = [want for _, want in CASES] + [set(REGISTRY), {*REGISTRY, "all"}]
    got = bash_completions(lines, folder)
    assert dict(zip(lines, got)) == dict(zip(lines, expected))


def home_with_completion(tmp_path: Path, shell: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    for _ in range(2):  # installing twice changes nothing more
        done = subprocess.run(
            [DYMN_TAG, "--install-completion", shell], capture_output=True, text=True, env=env, timeout=SAFETY_NET
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "" and "completion installed" in done.stderr
    return home


def test_install_completion_twice_adds_one_line(tmp_path):
    home = home_with_completion(tmp_path, "bash")
    rc = (home / ".bashrc").read_text()
    assert rc.count("source ") == 1 and ".bash_completions/dymn-tag.sh" in rc
    script = subprocess.run([DYMN_TAG, "--show-completion", "bash"], capture_output=True, text=True).stdout
    assert (home / ".bash_completions" / "dymn-tag.sh").read_text() == script


def test_an_unwritable_home_is_one_line(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").mkdir()  # (a start-up file that cannot be written)
    done = subprocess.run(
        [DYMN_TAG, "--install-completion", "bash"], capture_output=True, text=True, env={**os.environ, "HOME": str(home)}
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"dymn-tag: error: {home / '.bashrc'}: cannot write: ") and done.stderr.count("\n") == 1


def test_an_unknown_shell_is_one_usage_error(tmp_path):
    done = subprocess.run([DYMN_TAG, "--show-completion", "tcsh"], capture_output=True, text=True, timeout=SAFETY_NET)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("dymn-tag: error: --show-completion: 'tcsh' is not one of bash, zsh, fish")
    done = subprocess.run(
        [DYMN_TAG, "--show-completion"],
        capture_output=True,
        text=True,
        timeout=SAFETY_NET,
        env={**os.environ, "SHELL": "/bin/tcsh"},
    )
    assert done.returncode == 2 and "SHELL" in done.stderr and done.stderr.count("\n") == 1


SHELLS = {
    "bash": ["bash", "--noprofile", "-i"],
    "zsh": ["zsh", "-i"],
    "fish": ["fish", "-i"],
}


@pytest.mark.slow
@pytest.mark.parametrize("shell", list(SHELLS))
def test_installed_completion_completes_in_the_real_shell(tmp_path, folder, shell):
    """Tab pressed in an interactive shell that loaded what --install-completion wrote."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here")
    home = home_with_completion(tmp_path, shell)
    env = {
        "HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PS1": "$ ",
        "PROMPT": "$ ",
        "fish_greeting": "",
        "XDG_CONFIG_HOME": str(home / ".config"),
    }
    with Terminal(SHELLS[shell], env=env, cwd=folder, columns=200) as terminal:
        terminal.wait_for(lambda text: text.rstrip().endswith(("$", "#", ">")))
        terminal.send("dymn-tag --mod\t")
        terminal.wait_for(lambda text: "dymn-tag --model" in text.splitlines()[-1] if text else False)
        terminal.send("dymn20\t")
        terminal.wait_for(lambda text: "--model dymn20_as" in text)
        terminal.send("aud\t")
        terminal.wait_for(lambda text: "dymn20_as audio/" in text.replace("  ", " "))
        terminal.send("\x15")  # (Ctrl-U: a new line, for the command names)
        terminal.send("dymn-tag trai\t")
        terminal.wait_for(lambda text: "dymn-tag train" in text.splitlines()[-1])
