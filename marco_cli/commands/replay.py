"""``marco replay FILE.json``: draw a search saved by ``--save-tree``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ..core.errors import UsageError
from ..ui.console import out_console


def replay(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="A tree saved by `marco ask --save-tree FILE.json`.", show_default=False),
    ],
    animate: Annotated[
        bool, typer.Option("--animate", help="Replay the search as it happened (on a terminal).")
    ] = False,
    speed: Annotated[
        float, typer.Option("--speed", metavar="X", help="With --animate: how many times faster than the search ran.")
    ] = 1.0,
) -> None:
    """Draw a saved search tree: the final tree and its summary, or the search
    unfolding again with --animate."""
    from ..treefile.io import load_tree  # the search (and numpy) load here, not for --help
    from ..ui.replay import play, render_saved
    from ..ui.tree_view import snippet_width_for

    if not (math.isfinite(speed) and speed > 0):
        raise UsageError(f"--speed must be > 0, got {speed}")
    saved = load_tree(file)
    console = out_console()
    if animate and console.is_terminal:  # a pipe gets the final tree only
        play(saved, console, speed=speed)
    console.print(render_saved(saved, snippet_width=snippet_width_for(console)))


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
