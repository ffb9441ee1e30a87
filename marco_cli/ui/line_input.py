"""Reading what the user types: a line at a time from a terminal (readline:
editing and history) or from a pipe, with ``\"\"\"`` blocks for multi-line turns.

A line reader is any callable ``read_line(prompt) -> str`` that raises
``EOFError`` at the end of input (Ctrl-D) and lets ``KeyboardInterrupt``
through (Ctrl-C), so the block logic below is tested without a terminal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..core.errors import InputError

PROMPT, CONTINUATION = ">>> ", "... "
BLOCK = '"""'
HISTORY_LENGTH = 1000

ReadLine = Callable[[str], str]


@dataclass(frozen=True)
class UserInput:
    text: str
    block: bool = False  # typed between \"\"\" lines: plain text, never a slash command
    unterminated: bool = False  # the input ended inside a block


def read_input(read_line: ReadLine, prompt: str = PROMPT, continuation: str = CONTINUATION) -> UserInput:
    """One user turn: a line, or a ``\"\"\"`` block (``\"\"\"one line\"\"\"`` too).
    ``EOFError`` when the input is over; a block cut short by the end of input
    is still returned (nothing typed is dropped)."""
    line = read_line(prompt)
    head = line.lstrip()
    if not head.startswith(BLOCK):
        return UserInput(line.strip())
    first = head[len(BLOCK):]
    if first.rstrip().endswith(BLOCK):  # """all on one line"""
        return UserInput(first.rstrip()[: -len(BLOCK)], block=True)
    lines = [first] if first.strip() else []
    bad: InputError | None = None  # a bad line spoils its block, but the block is read to its end
    while True:
        try:
            line = read_line(continuation)
        except EOFError:
            if bad:
                raise bad from None
            return UserInput("\n".join(lines), block=True, unterminated=True)
        except InputError as exc:
            bad = bad or exc
            continue
        if line.rstrip().endswith(BLOCK):
            last = line.rstrip()[: -len(BLOCK)]
            if last.strip():
                lines.append(last)
            break
        lines.append(line)
    if bad:
        raise bad
    return UserInput("\n".join(lines), block=True)


class StreamLines:
    """Lines from a pipe or file: no prompt, UTF-8 checked line by line."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.line_number = 0

    def __call__(self, _prompt: str) -> str:
        data = self._stream.readline()
        if not data:
            raise EOFError
        self.line_number += 1
        try:
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise InputError(f"line {self.line_number} is not valid UTF-8 "
                             f"(byte 0x{data[exc.start]:02x})") from None


class TerminalLines:
    """``input()`` with readline: line editing, and history kept in a file
    across sessions. Without readline (Windows) it is plain ``input()``."""

    def __init__(self, history_file: Path | None, completions: Sequence[str] = ()) -> None:
        self.history_file = history_file
        self.completions = sorted(completions)
        try:
            import readline
        except ImportError:  # pragma: no cover - no readline on this platform
            self._readline = None
            return
        self._readline = readline
        readline.set_history_length(HISTORY_LENGTH)
        if self.completions:
            readline.set_completer(self._complete)
            # macOS ships libedit under the readline name; it spells bindings differently
            libedit = "libedit" in (readline.__doc__ or "")
            readline.parse_and_bind("bind ^I rl_complete" if libedit else "tab: complete")
        if history_file is not None:
            try:
                readline.read_history_file(str(history_file))
            except (OSError, ValueError):  # absent or unreadable: start a new one
                pass

    def __call__(self, prompt: str) -> str:
        return input(prompt)

    def _complete(self, text: str, state: int) -> str | None:
        """Tab after ``/``: the slash commands."""
        if not text.startswith("/"):
            return None
        matches = [c for c in self.completions if c.startswith(text)]
        return matches[state] if state < len(matches) else None

    def save_history(self) -> None:
        """Write the history; a read-only or full disk must not spoil the exit."""
        if self._readline is None or self.history_file is None:
            return
        # readline writes in place: a full disk would leave the old history cut
        # short. Written beside it, made durable, then renamed over it instead.
        tmp = self.history_file.with_name(f".{self.history_file.name}.{os.getpid()}.tmp")
        try:
            self.history_file.parent.mkdir(parents=True, exist_ok=True)
            self._readline.write_history_file(str(tmp))
            os.chmod(tmp, 0o600)  # what was typed may be private
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.history_file)
        except (OSError, ValueError):
            try:
                os.unlink(tmp)
            except OSError:
                pass
