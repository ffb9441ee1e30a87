"""What a command shows around an MCTS search, and what it keeps of it: the
live tree on a stderr terminal, the final view and ``--save-tree``; and for
``--mode vote``, a live line and a one-line summary on a stderr terminal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import TreeSaveError
from ..core.settings import Mode, SearchSettings
from ..reasoner import Answer
from ..search import Observer, ObserverGroup
from ..treefile.io import TreeRecorder, options_dict, save_tree
from ..ui.console import err_console
from ..ui.live import LiveSearchView
from ..ui.tree_view import snippet
from ..ui.vote_view import VoteProgress, vote_summary

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
        self.live = live and mode in (Mode.MCTS, Mode.VOTE)
        self.final = final
        self.save_to = save_to
        self.recorder: TreeRecorder | None = None

    @contextlib.contextmanager
    def observe(self) -> Iterator[Observer | None]:
        """The observer to hand the search (None when nobody listens). The
        live view stops when the block ends, Ctrl-C included."""
        self.recorder = TreeRecorder() if self.save_to is not None and self.mode is Mode.MCTS else None
        view: LiveSearchView | VoteProgress | None = None
        if self.live and self.mode is Mode.VOTE:
            console = err_console()
            if console.is_terminal:
                view = VoteProgress(console, samples=self.settings.samples)
        elif self.live:
            console = err_console()
            if console.is_terminal:
                title = snippet(self.question, TITLE_CHARS) or "root"
                view = LiveSearchView(console, simulations=self.settings.simulations, final=self.final, title=title)
        observers = [o for o in (view, self.recorder) if o is not None]
        with view if view is not None else contextlib.nullcontext():
            yield ObserverGroup(*observers) if observers else None

    def summarize(self, answer: Answer) -> None:
        """``--mode vote``: what the vote chose, one line on a stderr terminal
        (the search's summary is the live view's final panel)."""
        vote = answer.extra.get("vote")
        console = err_console()
        if vote is None or not self.final or not console.is_terminal:
            return
        console.print(
            vote_summary(vote, answer.generated_tokens, answer.seconds), style="dim", markup=False, highlight=False
        )

    def save(self, answer: Answer) -> TreeSaveError | None:
        """Write ``--save-tree`` (also for an interrupted search's partial tree).
        A failure is returned, not raised: the answer is printed first."""
        if self.save_to is None or answer.search is None:
            return None
        options = options_dict(self.settings, mode=self.mode.value)
        try:
            save_tree(
                self.save_to,
                answer.search,
                question=answer.question,
                model=answer.model,
                options=options,
                recorder=self.recorder,
            )
        except TreeSaveError as exc:
            return exc
        return None
