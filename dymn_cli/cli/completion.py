"""Shell completion for bash, zsh and fish: `dymn-tag --show-completion [SHELL]` prints the script,
`dymn-tag --install-completion [SHELL]` installs it where the shell loads it.

The routing of `dymn-tag` is its own (commands.py), not Typer's, so completion is too, driven the way
Click's is: the script runs `dymn-tag` again with `_DYMN_TAG_COMPLETE=<shell>`, the words of the command
line as its arguments and `_DYMN_TAG_CWORD` the index of the word being completed; `dymn-tag` prints
one candidate a line. `__files__` (or `__dirs__`) asks the shell for its own file (folder) names, which
it quotes and marks as only it can. What a value's candidates are follows from its placeholder
(metavars.py): paths for FILE, folders for DIR, the published names for MODEL, the values of a choice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from dymn_cli.cli import metavars
from dymn_cli.cli.commands import COMMANDS, END_OF_OPTIONS, TAG, command_names
from dymn_cli.errors import UsageError

COMPLETE_VAR = "_DYMN_TAG_COMPLETE"
CWORD_VAR = "_DYMN_TAG_CWORD"
FILES = "__files__"
DIRS = "__dirs__"
SHELLS = ("bash", "zsh", "fish")
SHOW, INSTALL = "--show-completion", "--install-completion"

BASH = r"""# dymn-tag completion for bash (dymn-tag --show-completion bash)
_dymn_tag_completion() {
    local IFS=$'\n' line
    local -a found
    found=( $(_DYMN_TAG_COMPLETE=bash _DYMN_TAG_CWORD=$((COMP_CWORD - 1)) "$1" "${COMP_WORDS[@]:1}" 2>/dev/null) )
    COMPREPLY=()
    for line in "${found[@]}"; do
        case "$line" in
            __files__) compopt -o filenames 2>/dev/null; COMPREPLY+=( $(compgen -f -- "$2") ) ;;
            __dirs__) compopt -o filenames 2>/dev/null; COMPREPLY+=( $(compgen -d -- "$2") ) ;;
            *) COMPREPLY+=( "$line" ) ;;
        esac
    done
}
complete -F _dymn_tag_completion dymn-tag
"""

ZSH = r"""#compdef dymn-tag
# dymn-tag completion for zsh (dymn-tag --show-completion zsh)
_dymn_tag() {
    local -a found values
    local line
    found=( ${(f)"$(_DYMN_TAG_COMPLETE=zsh _DYMN_TAG_CWORD=$((CURRENT - 2)) $words[1] ${(@)words[2,-1]} 2>/dev/null)"} )
    for line in $found; do
        case $line in
            __files__) _files ;;
            __dirs__) _files -/ ;;
            *) values+=( $line ) ;;
        esac
    done
    (( $#values )) && compadd -- $values
}
if [[ $funcstack[1] == _dymn-tag ]]; then
    _dymn_tag "$@"
else
    compdef _dymn_tag dymn-tag
fi
"""

FISH = r"""# dymn-tag completion for fish (dymn-tag --show-completion fish)
function __dymn_tag_complete
    set -l words (commandline -opc)
    set -l current (commandline -ct)
    for line in (env _DYMN_TAG_COMPLETE=fish _DYMN_TAG_CWORD=(math (count $words) - 1) $words[1] $words[2..-1] $current 2>/dev/null)
        switch $line
            case __files__
                __fish_complete_path $current
            case __dirs__
                __fish_complete_directories $current
            case '*'
                echo $line
        end
    end
end
complete --command dymn-tag --no-files --arguments '(__dymn_tag_complete)'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}


def script(shell: str) -> str:
    return SCRIPTS[shell]


def chosen_shell(args: list[str], option: str) -> str:
    """The shell named after `option`, else the login shell ($SHELL)."""
    if len(args) > 1:
        raise UsageError(f"{option} takes at most one shell: {', '.join(SHELLS)}")
    name = args[0] if args else Path(os.environ.get("SHELL", "")).name
    if name not in SHELLS:
        said = repr(name) if args else f"the login shell (SHELL={os.environ.get('SHELL', '')!r})"
        raise UsageError(f"{option}: {said} is not one of {', '.join(SHELLS)} (name one: {option} bash)")
    return name


def install(shell: str, home: Path | None = None) -> list[Path]:
    """Write the script where `shell` loads it, and the line that loads it into the shell's start-up file
    where one is needed (once, however often this runs). The files written or changed, in order."""
    home = home if home is not None else Path.home()
    if shell == "fish":  # (fish loads ~/.config/fish/completions/<command>.fish by itself)
        target = home / ".config" / "fish" / "completions" / "dymn-tag.fish"
        _write(target, FISH)
        return [target]
    if shell == "zsh":
        target = home / ".zfunc" / "_dymn-tag"
        _write(target, ZSH)
        return [target, _add_line(home / ".zshrc", "fpath+=~/.zfunc; autoload -Uz compinit; compinit")]
    target = home / ".bash_completions" / "dymn-tag.sh"
    _write(target, BASH)
    return [target, _add_line(home / ".bashrc", f"source '{target}'")]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _add_line(rc: Path, line: str) -> Path:
    text = rc.read_text() if rc.is_file() else ""
    if line not in text.splitlines():
        rc.write_text(f"{text}{'' if not text or text.endswith(chr(10)) else chr(10)}{line}\n")
    return rc


def candidates(words: list[str], cword: int, command_for: Callable[[str], Any]) -> list[str]:
    """What may stand at `words[cword]` (the words after `dymn-tag`), given the words before it."""
    before = words[:cword]
    incomplete = words[cword] if cword < len(words) else ""
    if before and before[-1] == "=":  # (bash splits `--model=dy` into three words)
        before = before[:-1]
    elif incomplete == "=":
        incomplete = ""
    if not before:
        if incomplete.startswith("-"):
            return _options(command_for(TAG), incomplete) + [o for o in (SHOW, INSTALL) if o.startswith(incomplete)]
        return [name for name in command_names() if name.startswith(incomplete)] + [FILES]
    name, rest = (before[0], before[1:]) if before[0] in (TAG, *COMMANDS) else (TAG, before)
    command = command_for(name)
    if END_OF_OPTIONS not in rest:
        if incomplete.startswith("--") and "=" in incomplete:
            option, _, value = incomplete.partition("=")
            param = _option(command, option)
            return [f"{option}={v}" for v in _values(param, value)] if param is not None else []
        param = _option(command, rest[-1]) if rest else None
        if param is not None and not param.is_flag and not param.count:
            return _values(param, incomplete)
        if before[0] in (SHOW, INSTALL):
            return [shell for shell in SHELLS if shell.startswith(incomplete)]
        if incomplete.startswith("-"):
            return _options(command, incomplete)
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    return _values(arguments[0], incomplete) if arguments else []


def _options(command: Any, incomplete: str) -> list[str]:
    found = []
    for param in command.params:
        if param.param_type_name == "option" and not getattr(param, "hidden", False):
            found += [o for o in (*param.opts, *param.secondary_opts) if o.startswith(incomplete)]
    return [
        *sorted(o for o in found if o.startswith("--")),
        *sorted(o for o in found if not o.startswith("--")),
        *_help(incomplete),
    ]


def _help(incomplete: str) -> list[str]:
    return [o for o in ("--help", "-h") if o.startswith(incomplete)]


def _option(command: Any, word: str) -> Any:
    for param in command.params:
        if param.param_type_name == "option" and word in param.opts:
            return param
    return None


def _values(param: Any, incomplete: str) -> list[str]:
    """The values `param` takes that begin with `incomplete` (or a request for the shell's file names)."""
    choices = _choices(param)
    if choices:
        return [c for c in choices if c.startswith(incomplete)]
    if param.metavar in metavars.PATH_LIKE:
        return [FILES]
    if param.metavar == metavars.DIR:
        return [DIRS]
    if param.metavar == metavars.MODEL:  # (an ensemble joins names with commas: complete the last one)
        from dymn_cli.models.weights import REGISTRY

        head, _, last = incomplete.rpartition(",")
        names = [*REGISTRY, *(["all"] if param.param_type_name == "argument" else [])]
        return [f"{head},{n}" if head else n for n in names if n.startswith(last)]
    if param.metavar == metavars.DEVICE:
        return [d for d in ("auto", "cpu", "cuda") if d.startswith(incomplete)]
    return []


def _choices(param: Any) -> list[str]:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(member.value) for member in annotation]
    return list(getattr(getattr(param, "type", None), "choices", None) or [])


def complete(shell: str, words: list[str], command_for: Callable[[str], Any], environ: Mapping[str, str]) -> str:
    """The answer to one completion request: candidates, one a line."""
    if shell not in SHELLS:
        return ""
    try:
        cword = int(environ.get(CWORD_VAR, str(len(words))))
    except ValueError:
        return ""
    return "\n".join(candidates(words, max(cword, 0), command_for))


def run_option(option: str, args: list[str]) -> None:
    """`--show-completion [SHELL]`: the script on stdout; `--install-completion [SHELL]`: installed, and
    a line on stderr that says where and what to do for the shell that is open now."""
    import logging

    import typer

    shell = chosen_shell(args, option)
    if option == SHOW:
        typer.echo(script(shell), nl=False)
        return
    written = install(shell)
    logging.getLogger("dymn_cli").info(
        "%s completion installed: %s; it works in new %s sessions", shell, ", ".join(map(str, written)), shell
    )
