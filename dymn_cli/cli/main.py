"""`dymn-tag`: the entry point; the commands are registered here, each in its own module.

Errors are `DymnError`s raised below this layer; `main` turns them into one line on stderr and an
exit code, in one place: 0 all tagged, 1 some input failed, 2 usage error, 130/143 stopped by a signal.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys

import typer

from dymn_cli.cli.download import download_command
from dymn_cli.cli.labels import labels_command
from dymn_cli.cli.merge import merge_command
from dymn_cli.cli.models import models_command
from dymn_cli.cli.search import search_command
from dymn_cli.cli.tag import tag_app
from dymn_cli.cli.train import train_command
from dymn_cli.errors import DymnError, Interrupted, SignalReceived
from dymn_cli.terminal import printable, quiet_native_stderr

log = logging.getLogger("dymn_cli")

commands_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None, no_args_is_help=True)
commands_app.command("models")(models_command)
commands_app.command("download")(download_command)
commands_app.command("merge")(merge_command)
commands_app.command("labels")(labels_command)
commands_app.command("train")(train_command)
commands_app.command("search")(search_command)
SUBCOMMANDS = ("models", "download", "labels", "merge", "train", "search")


class _TerminalSafeFormatter(logging.Formatter):
    """Every line on stderr escapes what names may hold (newlines, escape sequences, bytes that are
    not UTF-8): one line per message, and nothing in a file name drives the terminal."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = printable(record.message)
        return super().formatMessage(record)


def _interrupt(signum: int, frame: object) -> None:
    raise SignalReceived(signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `dymn-tag`; returns (and exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    quiet_native_stderr()  # (decoders in this process print their own notes on fd 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerminalSafeFormatter("dymn-tag: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    app = commands_app if args and args[0] in SUBCOMMANDS else tag_app
    command = typer.main.get_command(app)
    for signum in (signal.SIGINT, signal.SIGTERM):  # e.g. while a model loads: 130 / 143 and one line
        if signal.getsignal(signum) is not signal.SIG_IGN:  # (a background job may be meant to ignore Ctrl-C)
            signal.signal(signum, _interrupt)
    try:
        # Typer reports its own usage errors (exit 2) and turns typer.Exit into the exit code.
        command.main(args=args, prog_name="dymn-tag", standalone_mode=True)
        code = 0
    except DymnError as error:
        log.error("error: %s", str(error))
        code = error.exit_code
    except SignalReceived as received:
        stopped = Interrupted(received.signum)
        log.error("%s", stopped)
        code = stopped.exit_code
    except KeyboardInterrupt:
        code = 130
    except SystemExit as done:  # (how Typer's standalone mode ends every command)
        code = done.code
    # The process ends here and frees everything with it; spare the interpreter's last garbage
    # collection over torch's objects at exit (0.3 s of every run, see README "Performance").
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    main()
