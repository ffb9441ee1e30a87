"""``marco chat``: a multi-turn reasoning REPL (or a script read from stdin)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..chat.conversation import check_writable
from ..chat.session import ChatSession, open_session
from ..core.errors import ExitCode, MarcoError
from ..core.settings import Mode, marco_home
from ..core.spec import Surface
from ..models.registry import load_registry
from ..ui.console import is_tty, notice
from ..ui.line_input import StreamLines, TerminalLines
from . import _options as o

HISTORY_FILE = "chat_history"


@o.settings_flags(mode=Mode.COT)
def chat(
    resume: o.ResumeOpt = None,
    save: Annotated[
        str | None,
        typer.Option(
            "--save",
            metavar="FILE",
            help="Save the conversation to this JSON file after every turn and on exit (and on /save).",
            show_default=False,
        ),
    ] = None,
    show_thoughts: o.ShowThoughtsOpt = False,
    no_live: o.NoLiveOpt = False,
    confidence: o.ConfidenceOpt = False,
    *,
    flags: o.Flags,
) -> None:
    """Talk with the model, turn after turn: /help lists the commands.

    From a pipe (marco chat < script.txt) each line is one turn (\"\"\" blocks
    span lines) and each answer is printed as one block on stdout."""
    runtime = flags.runtime()
    resume_file = o.check_resume(resume, save, writer_flag="--save")
    if resume is not None and resume != o.RESUME_SELF and save is None:
        save = resume  # --resume FILE carries on in FILE, as eval's does
    if resume == o.RESUME_SELF and resume_file is not None and not Path(resume_file).exists():
        resume_file = None  # nothing saved yet: a new conversation that --save starts
    if save:
        check_writable(save)  # learn it now, not after a day of chatting
    m = flags.model_settings
    # Only settings given on the command line apply, so a resumed conversation
    # keeps its saved values for the others.
    session = open_session(
        load_registry(m.models),
        runtime,
        model=m.model,
        model_given="model" in flags.given,
        resume=resume_file,
        overrides=flags.given_values(Surface.CHAT),
        mode=flags.mode if "mode" in flags.given or not resume_file else None,
        notify=notice,
        backend=m.backend,
    )
    status = _run(session, save, confidence, show_thoughts, live=not no_live)
    if status:
        raise typer.Exit(status)


def _run(
    session: ChatSession, save: str | None, confidence: bool = False, show_thoughts: bool = False, live: bool = True
) -> int:
    """Run the loop; whatever ends it (Ctrl-D, /exit, an error, Ctrl-C in a
    pipe), the history is written and the conversation saved to ``--save``."""
    from ..ui.repl import Repl  # the search (and numpy) load for a chat, not for --help
    from ..ui.slash import COMMANDS

    interactive = is_tty(sys.stdin)
    if interactive:
        lines: TerminalLines | StreamLines = TerminalLines(
            marco_home() / HISTORY_FILE, completions=[f"/{name}" for name in COMMANDS if name.isalpha()]
        )
    else:
        lines = StreamLines(sys.stdin.buffer)
    try:
        status = Repl(
            session,
            lines,
            interactive=interactive,
            save_path=save,
            confidence=confidence,
            show_thoughts=show_thoughts,
            live=live,
        ).run()
    except BaseException:
        _close(session, lines, save)  # a failed save must not hide what ended the session
        raise
    saved = _close(session, lines, save)
    return status if saved else int(ExitCode.ERROR)


def _close(session: ChatSession, lines: TerminalLines | StreamLines, save: str | None) -> bool:
    """Write the history and the conversation; False when the save failed
    (reported here as one line)."""
    if isinstance(lines, TerminalLines):
        lines.save_history()
    session.close()
    if not save:
        return True
    try:
        session.save(save)
    except MarcoError as exc:
        notice(f"error: {exc}")  # the file name is quoted with its control characters shown
        return False
    return True


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
