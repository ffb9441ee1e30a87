"""The README's option table, made from the settings spec and the commands
as they are registered, so it cannot drift from either (a test compares it
with the README; ``python -m marco_cli.commands._readme README.md`` rewrites
the part between the markers)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..core.atomic import write_text_atomic
from ..core.settings import SPEC
from ..core.spec import Setting, Surface

BEGIN = "<!-- settings table: generated from marco_cli/core/settings.py; do not edit by hand -->"
END = "<!-- end of settings table -->"
MODEL_COMMANDS = ("ask", "chat", "translate", "eval", "serve")


def _commands() -> tuple[dict[str, set[str]], dict[str, str]]:
    """Each model command's flags, and its --mode default."""
    import typer
    from typer.main import get_command

    from . import COMMANDS

    app = typer.Typer()
    for register in COMMANDS:  # the commands as `marco` registers them
        register(app)
    group = get_command(app)
    flags, modes = {}, {}
    for name in MODEL_COMMANDS:
        command = group.commands[name]  # type: ignore[attr-defined]
        flags[name] = {opt for param in command.params for opt in getattr(param, "opts", ())}
        mode = getattr(command.callback, "mode_default", None)
        if mode is not None:
            modes[name] = mode.value
    return flags, modes


def _mode_default(modes: dict[str, str]) -> str:
    by_mode: dict[str, list[str]] = {}
    for command, mode in modes.items():
        by_mode.setdefault(mode, []).append(command)
    return "; ".join(f"{mode} in {', '.join(commands)}" for mode, commands in by_mode.items())


def _cell(text: str) -> str:
    """Markdown-safe: pipes escaped, tags such as </Thought> in code spans."""
    return re.sub(r"(</?[A-Z][A-Za-z]*>)", r"`\1`", text.replace("|", "\\|"))


def _option(s: Setting) -> str:
    if s.kind is bool:
        names = f"{s.flag}" + (f" / --no-{s.name}" if s.negatable else "")
    else:
        names = f"{s.short + ', ' if s.short else ''}{s.flag} {s.shown_metavar}"
    return f"`{_cell(names)}`"


def _where(s: Setting, flags: dict[str, set[str]]) -> str:
    having = [c for c in MODEL_COMMANDS if s.flag in flags[c]]
    missing = [c for c in MODEL_COMMANDS if c not in having]
    commands = "all" if not missing else ", ".join(having) if len(having) <= 2 else f"all but {', '.join(missing)}"
    extra = []
    if Surface.CHAT in s.surfaces:
        extra.append(f"`/set {s.name}`")
    if Surface.REQUEST in s.surfaces:
        extra.append(f"`marco.{s.key}`")
    elif s.openai:
        extra.append(f"`{s.openai}`")
    return "; ".join([commands, *extra])


def option_table() -> str:
    flags, modes = _commands()
    lines = [
        "| option | default | meaning | where |",
        "|---|---|---|---|",
    ]
    group = None
    for s in SPEC:
        if Surface.CLI not in s.surfaces:
            continue
        if s.group is not group:
            group = s.group
            lines.append(f"| **{group.value}** | | | |")
        default = _mode_default(modes) if s.name == "mode" else s.default_shown
        default = f"`{default}`" if "\\" in default else default
        env = f" (also `{s.envvar}`)" if s.envvar else ""
        lines.append(f"| {_option(s)} | {_cell(default)} | {_cell(s.help)}{env} | {_where(s, flags)} |")
    return "\n".join(lines)


def replace_table(readme: str) -> str:
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError("the README has no settings table markers")
    return f"{head}{BEGIN}\n{option_table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "README.md")
    write_text_atomic(path, replace_table(path.read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
