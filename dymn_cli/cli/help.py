"""Help pages in rich panels, and one style for every usage error (`dymn-tag: error: ...`)."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from typer import rich_utils
from typer.core import TyperArgument, TyperCommand, TyperOption

from dymn_cli.cli.panels import GENERAL

PROG = "dymn-tag"

# The exceptions of the Click that Typer runs on: the click package's, or (newer Typers) those of
# Typer's own copy of Click, which are not the click package's classes.
click_errors: Any = importlib.import_module(typer.BadParameter.__module__)


class CommandWithPanels(TyperCommand):
    """A Typer command whose help ends with two panels of its own: the commands of the program (for
    the default command, so that `dymn-tag --help` lists them all) and examples, each example's
    command on a line of its own so that a narrow terminal never wraps it mid-word."""

    commands: Sequence[tuple[str, str]] = ()
    examples: Sequence[tuple[str, str]] = ()

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and any(getattr(p, "rich_help_panel", None) == GENERAL for p in self.params):
            option.rich_help_panel = GENERAL  # (beside --version and --quiet)
        return option

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""  # (a switch takes no value: no '<bool>' beside it)
            elif param.metavar is None and param.name and not _is_choice(param):
                param.metavar = param.name.upper()  # a name, not a Python type ('<list[Path]>', '<float>')
            if isinstance(param, TyperArgument) and param.metavar is not None:
                # The metavar names the argument already; not also a Python type ('<list[str]>').
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        super().format_help(ctx, formatter)  # (the rich help prints straight to the console)
        console = rich_utils._get_rich_console()
        if self.commands:
            table = Table.grid(padding=(0, 2))
            table.add_column(style="bold cyan", no_wrap=True)
            table.add_column()
            for name, summary in self.commands:
                table.add_row(name, summary)
            console.print(Panel(table, title="Commands", title_align="left", border_style="dim"))
        if self.examples:
            lines: list[Text] = []
            for command, meaning in self.examples:
                lines.append(Text(command, style="bold", no_wrap=True, overflow="fold"))
                lines.append(Text(f"    {meaning}", style="dim"))
            console.print(Panel(Group(*lines), title="Examples", title_align="left", border_style="dim"))


def _is_choice(param: Any) -> bool:
    """Whether the help shows the values themselves (`<mean|max>`): Typer's own copy of Click describes
    a parameter's type in `type_descriptor`, the click package in `type`."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        return bool(getattr(descriptor, "is_choice", False))
    return hasattr(getattr(param, "type", None), "choices")


def first_line(text: str | None) -> str:
    """A command's one-line summary: the first line of its docstring."""
    return (text or "").strip().splitlines()[0].rstrip(".") if text and text.strip() else ""


def usage_message(error: Any) -> str:
    """Click's and Typer's usage errors in the tool's own words, one line, lower case like the rest."""
    if isinstance(error, click_errors.NoSuchOption):
        hint = ""
        if error.possibilities:  # (Click lists every near name; the nearest is the one meant)
            nearest = difflib.get_close_matches(error.option_name, error.possibilities, n=1, cutoff=0)
            hint = f" (did you mean {nearest[0]}?)"
        return f"no such option: {error.option_name}{hint}"
    if isinstance(error, click_errors.MissingParameter):
        return _lower_first(error.format_message()).rstrip(".")
    if isinstance(error, click_errors.BadParameter):
        name = error.param_hint
        if name is None and error.param is not None:
            name = _longest_name(error.param)
        if isinstance(name, (list, tuple)):
            name = max(name, key=len)
        message = _plain(error).rstrip(".")
        return f"{str(name).strip(chr(39))}: {message}" if name else _lower_first(message)
    return _lower_first(error.format_message()).rstrip(".")


def _longest_name(param: Any) -> str:
    if isinstance(param, TyperOption):
        return max(param.opts, key=len)
    # (a TyperArgument of some Typer versions has no human_readable_name: a bad RESULTS path crashed here)
    return (getattr(param, "human_readable_name", None) or param.name or "").upper()


def _plain(error: Any) -> str:
    """A bad value's message without the validation library's wording (Typer checks values with
    pydantic: 'Value error, ...', 'Input should be ...')."""
    cause = error.__cause__
    if cause is not None and hasattr(cause, "errors"):
        detail = cause.errors()[0]
        message = str(detail.get("msg", error.message)).removeprefix("Value error, ")
        return message.replace("Input should be", f"{detail.get('input')!s} should be", 1)
    return str(error.message)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text
