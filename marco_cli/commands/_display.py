"""What a command shows around an MCTS search, and what it keeps of it: the
live tree on a stderr terminal, the final view, ``--save-tree`` and the
``--confidence`` heatmap. Shared by ``ask`` and ``chat`` so both behave alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.text import Text

from ..errors import TreeSaveError
from ..reasoner import Answer
from ..search import Observer, ObserverGroup
from ..settings import Mode, SearchSettings
from ..treefile import TreeRecorder, options_dict, save_tree
from ..ui.console import err_console
from ..ui.heatmap import answer_heatmap, token_pieces
from ..ui.live import LiveSearchView
from ..ui.tree_view import snippet

TITLE_CHARS = 60


class SearchDisplay:
    """``with display.observe() as observer: reasoner.ask(..., observer=observer)``,
    then ``display.save(answer)``.

    The live tree draws only for MCTS, only when stderr is a terminal and
    ``live`` is set; ``final`` leaves the chosen path and a summary behind.
    """

    def __init__(
        self,
        *,
        mode: Mode,
        settings: SearchSettings,
        question: str,
        live: bool = True,
        final: bool = True,
        save_to: Path | None = None,
    ) -> None:
        self.mode = mode
        self.settings = settings
        self.question = question
        self.live = live and mode is Mode.MCTS
        self.final = final
        self.save_to = save_to
        self.recorder: TreeRecorder | None = None

    @contextlib.contextmanager
    def observe(self) -> Iterator[Observer | None]:
        """The observer to hand the search (None when nobody listens). The
        live view stops when the block ends, Ctrl-C included."""
        self.recorder = TreeRecorder() if self.save_to is not None and self.mode is Mode.MCTS else None
        view = None
        if self.live:
            console = err_console()
            if console.is_terminal:
                title = snippet(self.question, TITLE_CHARS) or "root"
                view = LiveSearchView(console, simulations=self.settings.simulations, final=self.final, title=title)
        observers = [o for o in (view, self.recorder) if o is not None]
        with view if view is not None else contextlib.nullcontext():
            yield ObserverGroup(*observers) if observers else None

    def save(self, answer: Answer) -> TreeSaveError | None:
        """Write ``--save-tree`` (also for an interrupted search's partial tree).
        A failure is returned, not raised: the answer is printed first."""
        if self.save_to is None or answer.search is None:
            return None
        options = options_dict(self.settings, mode=self.mode.value)
        try:
            save_tree(
                self.save_to, answer.search, question=answer.question, model=answer.model,
                options=options, recorder=self.recorder,
            )
        except TreeSaveError as exc:
            return exc
        return None


def confidence_view(answer: Answer, detokenize: Callable[[Sequence[int]], str], *, thought: bool) -> Text:
    """The answer as a token-confidence heatmap (plain text when no tokens survived)."""
    if not answer.tokens:
        return Text(answer.answer)
    pieces = token_pieces(detokenize, answer.tokens)
    return answer_heatmap(pieces, answer.confidences, thought=thought)


def confidence_json(answer: Answer, detokenize: Callable[[Sequence[int]], str]) -> list[dict[str, Any]]:
    """``[{"piece": "4", "c": 0.93}, ...]`` for ``--json --confidence``."""
    pieces = token_pieces(detokenize, answer.tokens)
    return [
        {"piece": p, "c": None if c is None else round(c, 6)}
        for p, c in zip(pieces, answer.confidences)
    ]
