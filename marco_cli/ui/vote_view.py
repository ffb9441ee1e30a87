"""``--mode vote`` on a stderr terminal: one live line while the chains are
sampled, then one line that says what the vote chose and how firmly.

The chains are decoded together, so there is no single stream to show; the
line counts their tokens instead (the reasoner reports them every 8), so it
moves from the start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..search.events import Event, TokensGenerated
from .safe_text import escape_controls


class VoteProgress:
    """``with VoteProgress(console, samples=6) as view: reasoner.ask(..., observer=view)``"""

    def __init__(self, console: Console, *, samples: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.samples = samples
        self._clock = clock
        self._started = clock()
        self._tokens = 0
        self._lock = threading.Lock()
        self._live: Live | None = None

    def on_event(self, event: Event) -> None:
        if isinstance(event, TokensGenerated):
            with self._lock:
                self._tokens = event.in_flight

    def line(self) -> Text:
        with self._lock:
            tokens = self._tokens
        seconds = self._clock() - self._started
        rate = f" · {tokens / seconds:.1f} tok/s" if seconds > 0 and tokens else ""
        return Text(f"vote · sampling {self.samples} chains · {tokens} tokens{rate} · {seconds:.1f}s", style="dim")

    def __enter__(self) -> VoteProgress:
        self._live = Live(
            console=self.console,
            get_renderable=self.line,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()


def vote_summary(vote: dict[str, Any], tokens: int, seconds: float) -> str:
    """One line: the answer the vote chose, how many chains gave it, its share
    of their value, and the cost."""
    answer = vote.get("answer")
    keys = vote.get("keys") or []
    agreeing = sum(1 for k in keys if answer is not None and k == answer)
    shown = escape_controls(str(answer)) if answer is not None else None
    if shown is None:
        head = f"vote: no chain gave an answer; the most confident of {vote.get('samples')} chains"
    else:
        if len(shown) > 40:
            shown = shown[:39] + "…"
        head = (
            f"vote: '{shown}' from {agreeing} of {vote.get('samples')} chains "
            f"({100 * float(vote.get('share') or 0):.0f}% of their value)"
        )
    return f"{head} · {tokens} tokens · {seconds:.1f}s"
