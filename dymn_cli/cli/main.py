"""`dymn-tag`: the entry point; the commands are listed in commands.py, each in its own module.

Errors are `DymnError`s raised below this layer and Click's usage errors; `main` turns them into one
line on stderr (`dymn-tag: error: ...`) and an exit code, in one place: 0 all tagged, 1 some input
failed or an output could not be written, 2 usage error, 130/143 stopped by a signal, 141 (SIGPIPE)
the reader of the output went away.

Which command runs is `commands.split_command`'s to say: a command name runs the command, anything
else is `dymn-tag tag`. Shell completion answers here too, before anything else (completion.py).
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import sys
from typing import Any

import typer

from dymn_cli.cli import completion
from dymn_cli.cli.commands import COMMANDS, TAG, split_command
from dymn_cli.cli.help import PROG, CommandWithPanels, click_errors, first_line, usage_message
from dymn_cli.cli.tag import EXAMPLES, tag_app
from dymn_cli.errors import DymnError, Interrupted, MissingExtra, OutputClosed, SignalReceived
from dymn_cli.run.stop_signals import raise_once
from dymn_cli.terminal import printable, quiet_native_stderr

log = logging.getLogger("dymn_cli")

commands_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
for _name, _function in COMMANDS.items():
    commands_app.command(_name, cls=CommandWithPanels)(_function)


def command_list() -> list[tuple[str, str]]:
    """Each command with its one-line summary, as `dymn-tag --help` lists them."""
    return [(f"{TAG} PATHS...", "Tag audio (the default command; the explicit form for paths named like a command)")] + [
        (name, first_line(function.__doc__)) for name, function in COMMANDS.items()
    ]


def route(args: list[str]) -> tuple[Any, list[str], str]:
    """The command to run, the arguments it parses and the program name its help shows."""
    name, rest = split_command(args)
    if name != TAG:
        return typer.main.get_command(commands_app), [name, *rest], PROG
    return _tag_command(), rest, f"{PROG} {TAG}" if args[:1] == [TAG] else PROG


def command_for(name: str) -> Any:
    """The Click command of one name in `COMMANDS` (or `tag`), as shell completion reads it."""
    if name == TAG:
        return _tag_command()
    return typer.main.get_command(commands_app).commands[name]  # type: ignore[attr-defined]


def _params(command: Any, args: list[str]) -> list[Any]:
    """The parameters of the command that `command.main(args)` runs (a group's: its subcommand's)."""
    subcommands = getattr(command, "commands", None)
    if isinstance(subcommands, dict) and args and args[0] in subcommands:
        return list(subcommands[args[0]].params)
    return list(command.params)


def _tag_command() -> CommandWithPanels:
    command = typer.main.get_command(tag_app)
    assert isinstance(command, CommandWithPanels)
    command.commands = command_list()
    command.examples = EXAMPLES
    return command


class _TerminalSafeFormatter(logging.Formatter):
    """Every line on stderr escapes what names may hold (newlines, escape sequences, bytes that are
    not UTF-8): one line per message, and nothing in a file name drives the terminal."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = printable(record.message)
        return super().formatMessage(record)


def _interrupt(signum: int, frame: object) -> None:
    raise_once(signum)  # (a second signal while the first one's stop is finishing is only noted)


def _end_as_sigpipe() -> None:
    """End the way `seq 100 | head -1` ends `seq`: killed by SIGPIPE, which shells report as 141,
    with nothing on stderr. (Python ignores SIGPIPE; its default action is restored for this.)"""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # (nothing left to flush into the closed pipe at exit)
    except OSError:
        pass
    logging.shutdown()
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `dymn-tag`; returns (and exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if completion.COMPLETE_VAR in os.environ:  # the shell asks what may come next (completion.py)
        answer = completion.complete(os.environ[completion.COMPLETE_VAR], args, command_for, os.environ)
        sys.stdout.write(answer + "\n" if answer else "")
        sys.exit(0)
    quiet_native_stderr()  # (decoders in this process print their own notes on fd 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerminalSafeFormatter(f"{PROG}: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    command, command_args, prog_name = route(args)
    for signum in (signal.SIGINT, signal.SIGTERM):  # e.g. while a model loads: 130 / 143 and one line
        if signal.getsignal(signum) is not signal.SIG_IGN:  # (a background job may be meant to ignore Ctrl-C)
            signal.signal(signum, _interrupt)
    try:
        if args[:1] in ([completion.SHOW], [completion.INSTALL]):  # (the shell may follow: not a path)
            completion.run_option(args[0], args[1:])
            code = 0
        else:
            code = command.main(args=command_args, prog_name=prog_name, standalone_mode=False) or 0
    except click_errors.ClickException as error:  # Click's and Typer's usage errors, in the tool's words
        log.error("error: %s", usage_message(error))
        code = 2 if isinstance(error, click_errors.UsageError) else error.exit_code
    except typer.Abort as aborted:
        if isinstance(aborted.__cause__, EOFError):  # (Click turns an EOFError into Abort: not a Ctrl-C)
            log.error("error: an input ended unexpectedly (%s)", aborted.__cause__ or "EOFError")
            code = 1
        else:
            code = 130
    except OutputClosed:
        _end_as_sigpipe()
        code = OutputClosed.exit_code
    except ModuleNotFoundError as error:  # an optional dependency (torch, onnxruntime, ...): which extra installs it
        missing = MissingExtra.for_import(error)
        if missing is None:
            raise
        log.error("error: %s", missing)
        code = missing.exit_code
    except DymnError as error:
        with_local = getattr(error, "with_local", None)  # (models.download.ReleaseUnreachable: offline)
        if with_local is not None and any(getattr(p, "name", None) == "weights" for p in _params(command, command_args)):
            error = with_local("--weights FILE")  # where the command takes --weights, the first way out
        log.error("error: %s", str(error))
        code = error.exit_code
    except OSError as error:
        if error.errno != errno.ENAMETOOLONG:
            raise
        log.error("error: %s: %s", printable(str(error.filename or "")), "name too long for the file system")
        code = 2
    except SignalReceived as received:
        stopped = Interrupted(received.signum)
        log.error("%s", stopped)
        code = stopped.exit_code
    except KeyboardInterrupt:
        code = 130
    except SystemExit as done:
        code = done.code
    for signum in (signal.SIGINT, signal.SIGTERM):  # the status is decided, every output finished: a signal
        signal.signal(signum, signal.SIG_IGN)  # while the interpreter ends changes neither (nor prints a traceback)
    # The process ends here and frees everything with it; spare the interpreter's last garbage
    # collection over torch's objects at exit (0.3 s of every run, see README "Performance").
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    main()
