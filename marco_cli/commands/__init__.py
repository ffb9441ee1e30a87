"""One module per command; each exposes ``register(app)``.

Keeping commands apart keeps ``cli.py`` small and lets each command's
options sit next to the code that uses them.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from . import ask, eval, export_dpo, models

COMMANDS: list[Callable[[typer.Typer], None]] = [
    ask.register,
    models.register,
    eval.register,
    export_dpo.register,
]
