"""Slash commands of ``marco chat``: parsing, the command table, and handlers.

A handler takes the session and the text after the command name and returns
what to show (text or a rich renderable), ``None``, or ``QUIT``. Bad input is
a ``UsageError``: the REPL prints it as one line and the session goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

from ..chat.session import ChatSession, Loading
from ..chat.settings import KEYS
from ..core.errors import UsageError
from .summary import render_summary
from .tree_view import render_tree, snippet_width_at

if TYPE_CHECKING:
    from ..search import SearchResult


class _Quit:
    def __repr__(self) -> str:
        return "QUIT"


QUIT = _Quit()
Reply = str | RenderableType | _Quit | None


@dataclass(frozen=True)
class SlashContext:
    save_path: str | None = None  # --save FILE: where a bare /save writes
    loading: Loading | None = None  # progress while /model or /load loads a model


@dataclass(frozen=True)
class Command:
    usage: str
    help: str
    run: Callable[[ChatSession, str, SlashContext], Reply]


def parse(line: str) -> tuple[str, str]:
    """``/set temperature 0.5`` -> ("set", "temperature 0.5")."""
    body = line.strip()[1:]
    parts = body.split(None, 1)
    if not parts:
        raise UsageError("empty command (/help lists them)")
    return parts[0].lower(), parts[1].strip() if len(parts) > 1 else ""


def dispatch(session: ChatSession, line: str, context: SlashContext = SlashContext()) -> Reply:
    name, arg = parse(line)
    command = COMMANDS.get(name)
    if command is None:
        raise UsageError(
            f"unknown command '/{name}' (/help lists them; put text that starts "
            f'with \'/\' between """ lines to send it)'
        )
    return command.run(session, arg, context)


def _no_arg(name: str, arg: str) -> None:
    if arg:
        raise UsageError(f"/{name} takes no argument")


def _help(session: ChatSession, arg: str, _ctx: SlashContext) -> Reply:
    lines = ["Commands:"]
    lines += [f"  {c.usage:<18} {c.help}" for c in _unique_commands()]
    lines += ["", "Settings for /set:"]
    lines += [f"  {name:<18} {key.help}" for name, key in KEYS.items()]
    lines += [
        "",
        'Multi-line input: a line """, your text, then a line """.',
        "Ctrl-C stops an answer; Ctrl-D or /exit quits.",
    ]
    return "\n".join(lines)


def _mode(session: ChatSession, arg: str, _ctx: SlashContext) -> Reply:
    if not arg:
        return f"mode: {session.settings.mode.value} (/mode cot, /mode mcts or /mode vote)"
    session.set_mode(arg)
    return f"mode: {session.settings.mode.value}"


def _set(session: ChatSession, arg: str, _ctx: SlashContext) -> Reply:
    if not arg:
        return "\n".join(f"  {name:<18} {key.help}" for name, key in KEYS.items())
    key, value = [*arg.split(None, 1), ""][:2]
    session.set(key, value)
    key = key.lower()
    mode = session.settings.mode
    note = "" if session.settings.used(key) else f" (not used in {mode.value} mode)"
    return f"{key}: {session.settings.shown(key)}{note}"


def _show(session: ChatSession, arg: str, _ctx: SlashContext) -> Reply:
    _no_arg("show", arg)
    usage = session.context_usage()
    loaded = "loaded" if session.reasoner.loaded else "loads on the first question"
    if usage.used is None:
        context = f"window {usage.n_ctx} tokens (measured once the model is loaded)"
    else:
        context = f"{usage.used} of {usage.n_ctx} tokens"
    turns = f"{usage.turns} in context"
    if usage.dropped:
        turns += f", {usage.dropped} dropped"
    system = session.settings.system
    rows = [
        ("model", f"{session.model.label} ({loaded})"),
        ("mode", session.settings.mode.value),
        ("system", _shorten(system, 60) if system else "the model's default"),
        ("turns", turns),
        ("context", context),
    ]
    rows += session.settings.describe()
    return "\n".join(f"{k:<16} {v}" for k, v in rows)


def _tree(session: ChatSession, arg: str, _ctx: SlashContext) -> Reply:
    _no_arg("tree", arg)
    if session.last_search is None:
        raise UsageError("no search to show yet (/mode mcts, then ask a question)")
    return render_search(session.last_search)


def _save(session: ChatSession, arg: str, ctx: SlashContext) -> Reply:
    path = arg or ctx.save_path
    if not path:
        raise UsageError("usage: /save FILE")
    return f"saved {len(session.conversation.turns)} turns to {session.save(path)}"


def _load(session: ChatSession, arg: str, ctx: SlashContext) -> Reply:
    if not arg:
        raise UsageError("usage: /load FILE")
    session.load(arg, loading=ctx.loading)
    return (
        f"loaded {len(session.conversation.turns)} turns from {arg} "
        f"(model {session.model.label}, mode {session.settings.mode.value})"
    )


def _reset(session: ChatSession, arg: str, _ctx: SlashContext) -> Reply:
    _no_arg("reset", arg)
    session.reset()
    return "the conversation is cleared"


def _model(session: ChatSession, arg: str, ctx: SlashContext) -> Reply:
    if not arg:
        names = ", ".join(session.registry.names())
        return f"model: {session.model.label} (/model NAME to switch; known: {names})"
    session.switch_model(arg, loading=ctx.loading)
    return f"model: {session.model.label}"


def _exit(session: ChatSession, arg: str, _ctx: SlashContext) -> Reply:
    return QUIT


_EXIT = Command("/exit, /bye", "leave (Ctrl-D too)", _exit)
COMMANDS: dict[str, Command] = {
    "help": Command("/help", "this help", _help),
    "mode": Command(
        "/mode cot|mcts|vote", "answer by chain of thought, by tree search, or by a vote of sampled chains", _mode
    ),
    "set": Command("/set KEY VALUE", "change a setting (list below)", _set),
    "show": Command("/show", "model, settings and context used", _show),
    "tree": Command("/tree", "draw the last search tree again", _tree),
    "save": Command("/save FILE", "save the conversation as JSON", _save),
    "load": Command("/load FILE", "continue a saved conversation", _load),
    "reset": Command("/reset", "forget the conversation (settings stay)", _reset),
    "model": Command("/model NAME", "switch to another model", _model),
    "exit": _EXIT,
    "bye": _EXIT,
    "quit": _EXIT,
}
COMMANDS["?"] = COMMANDS["help"]


def _unique_commands() -> list[Command]:
    return list({id(c): c for c in COMMANDS.values()}.values())


def _shorten(text: str, width: int) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def render_search(result: SearchResult) -> RenderableType:
    """The last search again: the whole tree, the chosen path emphasised
    (``»``), and its summary panel, its node texts as wide as the terminal."""
    return _SearchView(result)


class _SearchView:
    """Laid out when printed, so the tree fills whatever width it is printed at."""

    def __init__(self, result: SearchResult) -> None:
        self.result = result

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        best = [node.id for node in self.result.path]
        yield render_tree(self.result.root, best_path=best, snippet_width=snippet_width_at(options.max_width))
        yield render_summary(self.result)
