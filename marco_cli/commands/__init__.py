"""One module per command; each exposes ``register(app)``.

Keeping commands apart keeps ``cli.py`` small and lets each command's
options sit next to the code that uses them.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from . import ask, chat, eval, export_dpo, models, pull, replay, serve, translate

COMMANDS: list[Callable[[typer.Typer], None]] = [
    ask.register,
    chat.register,
    models.register,
    pull.register,
    replay.register,
    serve.register,
    translate.register,
    eval.register,
    export_dpo.register,
]
