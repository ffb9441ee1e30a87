"""The Typer application and the one error boundary.

Commands live in ``marco_cli/commands/`` (one module each, with a
``register(app)`` function). This is the only place that turns a
``MarcoError`` into a one-line message and an exit code; ``--debug`` or
``MARCO_DEBUG=1`` re-raises instead, traceback and all.
"""

from __future__ import annotations

import os
import sys

import click
import typer
from typer.core import TyperGroup

from . import __version__
from .core.errors import ExitCode, MarcoError
from .core.streams import StdoutWriteError, discard_stdout, guard_standard_streams


def debug_enabled() -> bool:
    return os.environ.get("MARCO_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def report_error(message: str) -> None:
    """One line on stderr; never a traceback. The message may quote a file or
    an argument: its control characters are shown, not obeyed."""
    from .ui.safe_text import escape_controls

    sys.stderr.write(f"marco: error: {escape_controls(message)}\n")
    sys.stderr.flush()


class MarcoGroup(TyperGroup):
    """Wraps every command: typed errors become one line and an exit code.

    Done in the click group (not in ``main``) so ``CliRunner.invoke(app, ...)``
    in the tests sees exactly what a user sees.
    """

    def invoke(self, ctx: click.Context):
        try:
            result = super().invoke(ctx)
            _flush_stdout()  # a full or closed stdout fails here, inside the boundary
            return result
        except MarcoError as exc:
            if isinstance(exc, StdoutWriteError):
                discard_stdout()  # what is still buffered must not fail again at exit
            if debug_enabled():
                raise
            if exc.exit_code == ExitCode.INTERRUPTED:
                sys.stderr.write("\nmarco: interrupted\n")
            else:
                report_error(str(exc))
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            sys.stderr.write("\nmarco: interrupted\n")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            # `marco ask ... | head -1`: the reader left; that is not an error.
            _silence_stdout()
            raise typer.Exit(int(ExitCode.OK)) from None
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort,
                typer.Exit, typer.Abort, typer.TyperException):
            # typer >= 0.13 has its own Exit/Abort (not click's): `--help` raises one;
            # typer 0.29 vendors click, so its usage errors (bad option value,
            # unknown option) are TyperExceptions, which typer reports with exit 2
            raise
        except Exception as exc:  # a bug of ours: still one line, never a traceback
            if debug_enabled():
                raise
            report_error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
            raise typer.Exit(int(ExitCode.ERROR)) from None


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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks (also MARCO_DEBUG=1)."),
) -> None:
    """marco: o1-style reasoning on your own machine."""
    if debug:
        os.environ["MARCO_DEBUG"] = "1"


def _register_commands() -> None:
    from .commands import COMMANDS

    for register in COMMANDS:
        register(app)


_register_commands()


def main() -> None:
    guard_standard_streams()
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C outside a command (e.g. during import)
        sys.exit(int(ExitCode.INTERRUPTED))
