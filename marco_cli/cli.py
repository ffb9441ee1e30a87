"""The Typer application and the one error boundary.

Commands live in ``marco_cli/commands/`` (one module each, with a
``register(app)`` function). This is the only place that turns a
``MarcoError`` into a one-line message and an exit code; ``--debug`` or
``MARCO_DEBUG=1`` re-raises instead, traceback and all.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
import typer
from typer.core import TyperCommand, TyperGroup

from . import __version__
from .core.errors import ExitCode, MarcoError
from .core.spec import SettingError
from .core.streams import StdoutWriteError, discard_stdout, guard_standard_streams


def debug_enabled() -> bool:
    return os.environ.get("MARCO_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def report_error(message: str) -> None:
    """One line on stderr; never a traceback. The message may quote a file or
    an argument: its control characters are shown, not obeyed."""
    from .ui.safe_text import escape_controls

    sys.stderr.write(f"marco: error: {escape_controls(message)}\n")
    sys.stderr.flush()


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Click's usage errors: typer >= 0.29 raises those of its own copy of click."""
    kinds: list[type[BaseException]] = [click.UsageError]
    try:
        from typer._click.exceptions import UsageError as TyperUsageError
    except ImportError:
        pass
    else:
        kinds.append(TyperUsageError)
    return tuple(kinds)


USAGE_ERRORS = _usage_errors()


def usage_message(exc: BaseException) -> str | None:
    """A click usage error ("No such option", "Invalid value for '--port'")
    in marco's words, or None for the one that should print help instead
    (a bare ``marco``)."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        return None
    message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    message = message.replace("Invalid value for ", "invalid value for ").replace("'", "")
    message = message[:1].lower() + message[1:] if message[1:2].islower() else message
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None and ctx.command_path else "marco"
    return f"{message.rstrip('.')} (see {where} --help)"


def _report_usage(exc: BaseException) -> None:
    message = usage_message(exc)
    if message is None:
        raise exc
    report_error(message)
    raise typer.Exit(int(ExitCode.USAGE))


def cli_message(exc: MarcoError) -> str:
    """A ``SettingError`` names a setting; on the command line that is its flag."""
    return exc.worded(f"--{exc.name}") if isinstance(exc, SettingError) else str(exc)


class MarcoCommand(TyperCommand):
    """Every command's click command. Help is laid out by what the options
    are for: the command's own options first, then one section per group of
    the settings spec (Model, Generation, MCTS search, Model runtime), and
    arguments by their metavar. ``--resume`` may come without its FILE."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from .commands._options import BARE_VALUES

        names = {opt for param in self.params for opt in getattr(param, "opts", ())}
        args = list(args)
        i = 0
        while i < len(args) and args[i] != "--":
            bare = BARE_VALUES.get(args[i]) if args[i] in names else None
            if bare is not None and (i + 1 == len(args) or args[i + 1].startswith("-")):
                args.insert(i + 1, bare)  # `--resume` alone, or followed by another option
            i += 1
        try:
            return super().parse_args(ctx, args)
        except USAGE_ERRORS as exc:
            if getattr(exc, "ctx", None) is None:
                exc.ctx = ctx  # type: ignore[attr-defined]  # so the hint names this command's --help
            raise

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args: list[tuple[str, str]] = []
        sections: dict[str, list[tuple[str, str]]] = {"Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((param.metavar or (param.name or "").upper(), getattr(param, "help", "") or ""))
            else:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                sections.setdefault(panel, []).append(record)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


class MarcoGroup(TyperGroup):
    """Wraps every command: typed errors become one line and an exit code,
    and so do click's own usage errors (a bad option value, an unknown
    option, a missing argument).

    Done in the click group (not in ``main``) so ``CliRunner.invoke(app, ...)``
    in the tests sees exactly what a user sees.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except USAGE_ERRORS as exc:  # `marco --bogus`, `marco nosuchcommand`
            _report_usage(exc)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except USAGE_ERRORS as exc:
            _report_usage(exc)

    # Any: the Context is click's, or typer's private copy of click since typer 0.29
    def invoke(self, ctx: Any) -> Any:
        global _interrupted_said
        _interrupted_said = False  # one line per command run (the tests run many in one process)
        try:
            result = super().invoke(ctx)
            _flush_stdout()  # a full or closed stdout fails here, inside the boundary
            return result
        except USAGE_ERRORS as exc:
            _report_usage(exc)
        except MarcoError as exc:
            if isinstance(exc, StdoutWriteError):
                discard_stdout()  # what is still buffered must not fail again at exit
            if debug_enabled():
                raise
            if exc.exit_code == ExitCode.INTERRUPTED:
                _say_interrupted()
            else:
                report_error(cli_message(exc))
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            _say_interrupted()
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            # `marco ask ... | head -1`: the reader left; that is not an error.
            _silence_stdout()
            raise typer.Exit(int(ExitCode.OK)) from None
        except (
            click.exceptions.Exit,
            click.ClickException,
            click.exceptions.Abort,
            typer.Exit,
            typer.Abort,
            typer.TyperException,
        ):
            # typer >= 0.13 has its own Exit/Abort (not click's): `--help` raises one;
            # typer 0.29 vendors click, so its usage errors (bad option value,
            # unknown option) are TyperExceptions, which typer reports with exit 2
            raise
        except Exception as exc:  # a bug of ours: still one line, never a traceback
            if debug_enabled():
                raise
            report_error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
            raise typer.Exit(int(ExitCode.ERROR)) from None


_interrupted_said = False


def _say_interrupted() -> None:
    """The one line every Ctrl-C ends with, written once whichever way it came."""
    global _interrupted_said
    if not _interrupted_said:
        _interrupted_said = True
        sys.stderr.write("\nmarco: interrupted\n")


def _flush_stdout() -> None:
    stream = sys.stdout
    if stream is not None:
        stream.flush()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


app = typer.Typer(
    cls=MarcoGroup,
    name="marco",
    help="o1-style reasoning on your own machine: Marco-o1 + Monte Carlo Tree Search over llama.cpp.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"marco {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks (also MARCO_DEBUG=1)."),
) -> None:
    """marco: o1-style reasoning on your own machine."""
    if debug:
        os.environ["MARCO_DEBUG"] = "1"


def _register_commands() -> None:
    from .commands import COMMANDS

    for register in COMMANDS:
        register(app)
    for info in app.registered_commands:
        # every command's help lays out its options by group; `marco --help`
        # lists each command with its whole summary line, not a cut one
        if info.cls is None or info.cls is TyperCommand:
            info.cls = MarcoCommand
        if info.short_help is None and info.callback is not None and info.callback.__doc__:
            info.short_help = " ".join(info.callback.__doc__.strip().split("\n\n")[0].split())


_register_commands()


def main() -> None:
    guard_standard_streams()
    try:
        app()
    except SystemExit as exc:
        # typer turns a Ctrl-C that escapes a command (while options are read,
        # say) into a silent exit 130; the user still gets the line.
        if exc.code == ExitCode.INTERRUPTED:
            _say_interrupted()
        raise
    except KeyboardInterrupt:  # Ctrl-C outside a command (e.g. during import)
        _say_interrupted()
        sys.exit(int(ExitCode.INTERRUPTED))
