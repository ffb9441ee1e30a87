"""Terminal facts and consoles. stdout carries results only; everything live
(progress, thoughts, trees, notices) goes to stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from rich.console import Console
from rich.segment import Segment


def is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


class SafeConsole(Console):
    """A Rich console that escapes control characters in the text it draws
    (``ui.safe_text``): the sequences Rich itself emits for styles and live
    redraws are added after this step, or travel as control segments."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        from .safe_text import escape_controls

        return super()._render_buffer(
            segment if segment.control else Segment(escape_controls(segment.text), segment.style, segment.control)
            for segment in buffer
        )


def err_console() -> Console:
    """Rich console on stderr. Rich itself drops ANSI codes when stderr is not a
    terminal and honours NO_COLOR; ``highlight=False`` keeps numbers in model
    text from being recoloured."""
    return SafeConsole(stderr=True, highlight=False, soft_wrap=True, no_color=no_color() or None)


def out_console() -> Console:
    return SafeConsole(highlight=False, soft_wrap=True, no_color=no_color() or None)


def notice(message: str) -> None:
    """A one-line notice on stderr (not an error)."""
    from .safe_text import escape_controls

    sys.stderr.write(f"marco: {escape_controls(message)}\n")
    sys.stderr.flush()
