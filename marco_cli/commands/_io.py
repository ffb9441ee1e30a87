"""Reading the user's input: argument, stdin, or both."""

from __future__ import annotations

import sys

from ..core.errors import InputError, UsageError
from ..ui.console import is_tty


def read_stdin_bytes() -> bytes:
    """All of stdin, undecoded (``marco translate`` decodes line by line)."""
    stream = getattr(sys.stdin, "buffer", None)
    try:
        return stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
    except OSError:
        return b""


def read_stdin() -> str:
    """All of stdin as text; invalid UTF-8 is an error, not mojibake."""
    data = read_stdin_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"stdin is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def stdin_is_piped() -> bool:
    return sys.stdin is not None and not is_tty(sys.stdin)


def read_input(argument: str | None, *, what: str = "question") -> str:
    """stdin (when it is not a terminal, or the argument is ``-``), then a blank
    line, then the argument when both are given."""
    if argument == "-":
        text = read_stdin()
    else:
        piped = read_stdin() if stdin_is_piped() else ""
        parts = [p for p in (piped.strip("\n"), argument) if p is not None and p.strip()]
        text = "\n\n".join(parts) if parts else (argument or piped)
    if argument is None and not text.strip() and not stdin_is_piped():
        raise UsageError(f"no {what} given: pass it as an argument or pipe it on stdin")
    _check_text(text, what)
    return text


def _check_text(text: str, what: str) -> None:
    if not text.strip():
        raise UsageError(f"the {what} is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # argv bytes that are not UTF-8 arrive as lone surrogates
        raise InputError(f"the {what} is not valid UTF-8 text") from None
