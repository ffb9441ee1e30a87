"""Text from a file, a model or a server, made harmless for a terminal.

A saved tree, a conversation or a model's answer may hold terminal control
sequences: ``ESC [2J`` clears the screen, OSC 0 sets the window title, OSC 8
makes a link whose text lies about its target, a bidi override turns the
reading order around. Printed as they are, the file decides what the
terminal does. ``escape_controls`` shows every such character as a visible
escape (``\\x1b``) instead; newlines and tabs stay.

Every Rich console marco makes (``ui.console``) passes its text through
here, so a tree, summary, table or heatmap cannot forget to; plain writes of
results use ``for_terminal``, which leaves output to a pipe or file exact.
"""

from __future__ import annotations

import re

from .console import is_tty

# C0 controls but tab and newline, DEL, C1 controls, and the Unicode
# bidirectional overrides/isolates and line/paragraph separators.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _show(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    return _CONTROLS.sub(_show, text) if _CONTROLS.search(text) else text


def for_terminal(text: str, stream: object) -> str:
    """``text`` escaped when ``stream`` is a terminal; exact for a pipe or a file."""
    return escape_controls(text) if is_tty(stream) else text
