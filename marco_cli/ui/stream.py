"""Route streamed model text while it is generated: the thought (dimmed) to
stderr, the answer to stdout. Only used when a terminal is watching; piped
runs print the parsed answer once at the end instead."""

from __future__ import annotations

import sys
from enum import Enum

from rich.console import Console
from rich.text import Text

from ..prompts import OUTPUT_CLOSE, OUTPUT_OPEN, THOUGHT_CLOSE, THOUGHT_OPEN


class _State(Enum):
    UNKNOWN = 0  # not enough text yet to know whether the model uses tags
    THOUGHT = 1
    ANSWER = 2
    UNTAGGED = 3  # no tags: everything is the answer
    DONE = 4


class AnswerStream:
    def __init__(self, *, answer_to_stdout: bool, thought_console: Console | None) -> None:
        self.answer_to_stdout = answer_to_stdout
        self.thought_console = thought_console
        self.wrote_answer = False
        self._state = _State.UNKNOWN
        self._buf = ""
        self._pending_ws = ""  # trailing answer whitespace, written only if more text follows

    def feed(self, piece: str) -> None:
        self._buf += piece
        while self._step():
            pass

    def close(self) -> None:
        """Flush what is held back (a tag that never completed is plain text)."""
        if self._state is _State.UNKNOWN:
            self._state = _State.UNTAGGED
        if self._buf and self._state in (_State.THOUGHT, _State.ANSWER, _State.UNTAGGED):
            self._emit(self._buf)
        self._buf = ""
        if self.wrote_answer:
            sys.stdout.write("\n")
            sys.stdout.flush()

    # Each step consumes what it safely can; returns True if it changed state.
    def _step(self) -> bool:
        if self._state is _State.UNKNOWN:
            head = self._buf.lstrip()
            for tag, state in ((THOUGHT_OPEN, _State.THOUGHT), (OUTPUT_OPEN, _State.ANSWER)):
                if head.startswith(tag):
                    self._buf = head[len(tag):].lstrip("\n")
                    self._state = state
                    return True
            if head and not (THOUGHT_OPEN.startswith(head) or OUTPUT_OPEN.startswith(head)):
                self._state = _State.UNTAGGED
                return True
            return False
        if self._state in (_State.THOUGHT, _State.ANSWER):
            end_tag = OUTPUT_OPEN if self._state is _State.THOUGHT else OUTPUT_CLOSE
            idx = self._buf.find(end_tag)
            if idx >= 0:
                self._emit(self._buf[:idx].replace(THOUGHT_CLOSE, ""))
                self._buf = self._buf[idx + len(end_tag):].lstrip("\n")
                self._state = _State.ANSWER if self._state is _State.THOUGHT else _State.DONE
                return True
            keep = _partial_tag_suffix(self._buf, (end_tag, THOUGHT_CLOSE))
            self._emit(self._buf[: len(self._buf) - keep].replace(THOUGHT_CLOSE, ""))
            self._buf = self._buf[len(self._buf) - keep:]
            return False
        if self._state is _State.UNTAGGED:
            self._emit(self._buf)
            self._buf = ""
        return False

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self._state is _State.THOUGHT:
            if self.thought_console is not None:
                self.thought_console.print(Text(text, style="dim"), end="")
            return
        if self._state is _State.DONE or not self.answer_to_stdout:
            return
        if not self.wrote_answer:
            text = text.lstrip()
            if not text:
                return
            if self.thought_console is not None and self._state is _State.ANSWER:
                self.thought_console.print()
        body = text.rstrip()
        if not body:
            self._pending_ws += text
            return
        sys.stdout.write(self._pending_ws + body)
        self._pending_ws = text[len(body):]
        sys.stdout.flush()
        self.wrote_answer = True


def _partial_tag_suffix(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``text`` that could begin one of ``tags``."""
    best = 0
    for tag in tags:
        for n in range(min(len(tag) - 1, len(text)), 0, -1):
            if tag.startswith(text[-n:]):
                best = max(best, n)
                break
    return best
