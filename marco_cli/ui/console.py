"""Terminal facts and consoles. stdout carries results only; everything live
(progress, thoughts, trees, notices) goes to stderr."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console


def is_tty(stream: Any) -> bool:  # any object; one without isatty() is no terminal
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def err_console() -> Console:
    """Rich console on stderr. Rich itself drops ANSI codes when stderr is not a
    terminal and honours NO_COLOR; ``highlight=False`` keeps numbers in model
    text from being recoloured."""
    return Console(stderr=True, highlight=False, soft_wrap=True, no_color=no_color() or None)


def out_console() -> Console:
    return Console(highlight=False, soft_wrap=True, no_color=no_color() or None)


def notice(message: str) -> None:
    """A one-line notice on stderr (not an error)."""
    sys.stderr.write(f"marco: {message}\n")
    sys.stderr.flush()
