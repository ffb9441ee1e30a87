"""Route streamed model text while it is generated: the thought (dimmed) to
stderr, the answer to stdout. Only used when a terminal is watching; piped
runs print the parsed answer once at the end instead.

Where the thought ends and the answer begins is decided by the model's
format's splitter (``formats/split.py``), the same rules the HTTP server
streams by; this class only decides where each part is shown. A model
without a thought format streams its text dimmed as a draft, and the answer
cut from it is printed once it is complete.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.text import Text

from ..formats.reasoning import MARCO, ReasoningFormat
from ..formats.split import CONTENT, DRAFT, splitter_for
from .console import err_console
from .safe_text import for_terminal


def print_thought(thought: str, heading: str | None = None) -> None:
    """``--show-thoughts`` where nothing was streamed: the whole thought on
    stderr (dimmed on a terminal), under ``heading`` when one is given. Every
    command writes thoughts there, so stdout keeps only answers."""
    console = err_console()
    if heading:
        console.print(for_terminal(heading, sys.stderr), markup=False)
    console.print(
        Text(for_terminal(thought.strip(), sys.stderr), style="dim")
    )  # model text: controls shown, not obeyed


class AnswerStream:
    def __init__(
        self, *, answer_to_stdout: bool, thought_console: Console | None, reasoning: ReasoningFormat = MARCO
    ) -> None:
        self.answer_to_stdout = answer_to_stdout
        self.thought_console = thought_console
        self.wrote_answer = False
        self._splitter = splitter_for(reasoning)
        self._closed = False

    def feed(self, piece: str) -> None:
        self._show(self._splitter.feed(piece))

    @property
    def showed_thought(self) -> bool:
        """Whether anything dimmed (a thought or a draft) went to the terminal."""
        sent = self._splitter.sent
        return self.thought_console is not None and any(sent[c] for c in sent if c != CONTENT)

    def close(self) -> None:
        """Flush what is held back (a tag that never completed is plain text)."""
        if self._closed:
            return
        self._closed = True
        self._show(self._splitter.close())
        if self.wrote_answer:
            sys.stdout.write("\n")
            sys.stdout.flush()

    def _show(self, parts: list[tuple[str, str]]) -> None:
        for channel, text in parts:
            if channel != CONTENT:  # the thought, or a draft the answer is cut from later
                if self.thought_console is not None:
                    self.thought_console.print(Text(text, style="dim"), end="")
                continue
            if not self.answer_to_stdout:
                continue
            if self.thought_console is not None and text.strip() == self._splitter.sent[DRAFT].strip():
                # A format-less model wrote no answer marker: its whole draft is the
                # answer, and this terminal shows it already; do not repeat it.
                self.thought_console.print()
                self.wrote_answer = True
                continue
            if not self.wrote_answer and self.thought_console is not None and self.showed_thought:
                self.thought_console.print()  # end the dimmed thought's line
            sys.stdout.write(for_terminal(text, sys.stdout))
            sys.stdout.flush()
            self.wrote_answer = True
