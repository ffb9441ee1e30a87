"""The live search view: an observer that draws the tree while MCTS runs.

Threads: ``on_event`` runs on the search thread and only updates a
``SearchMirror`` under a lock. Rich's ``Live`` redraws on its own thread, at
most ``refresh_per_second`` (<= 10) times a second; each redraw freezes the
mirror into a ``NodeView`` under the lock and draws that snapshot outside
it, so nothing ever walks a tree that is changing.

It draws only on a terminal (``console.is_terminal``, i.e. stderr is a TTY)
unless told otherwise; elsewhere every method is a no-op, so piped runs get
nothing animated. On exit the animation is cleared (``transient``) and, with
``final=True``, the tree folded to the chosen path and a summary panel are
printed in its place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from ..search.events import Event
from .console import err_console
from .mirror import SearchMirror
from .summary import Progress, render_final, render_header
from .tree_view import render_tree, snippet_width_for

MAX_REFRESH = 10.0
_CHROME_LINES = 2  # the header, and a spare line so the cursor never scrolls the screen


class LiveSearchView:
    """``with LiveSearchView(console, simulations=16) as view: run_search(..., observer=view)``"""

    def __init__(
        self,
        console: Console | None = None,
        *,
        simulations: int | None = None,
        enabled: bool | None = None,
        final: bool = True,
        transient: bool = True,
        refresh_per_second: float = 8.0,
        title: str = "root",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console if console is not None else err_console()
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self.simulations = simulations
        self.final = final
        self.title = title
        self._transient = transient
        self._refresh = min(MAX_REFRESH, refresh_per_second)
        self._clock = clock
        self._lock = threading.Lock()
        self._mirror = SearchMirror()
        self._started: float | None = None
        self._live: Live | None = None
        self._cache: tuple[tuple[int, int, int], RenderableType] | None = None

    # -- observer ----------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self._started is None:
                self._started = self._clock()
            self._mirror.apply(event)

    # -- context manager -----------------------------------------------------

    def __enter__(self) -> LiveSearchView:
        if self.enabled:
            self._live = Live(
                console=self.console,
                get_renderable=self._renderable,
                refresh_per_second=self._refresh,
                transient=self._transient,
                redirect_stdout=False,
                redirect_stderr=False,
                vertical_overflow="crop",
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop animating (idempotent); print the final view if there is one."""
        live, self._live = self._live, None
        if live is None:
            return
        live.stop()
        result = self._mirror.result
        if self.final and result is not None:
            self.console.print(render_final(
                result, simulations=self.simulations, title=self.title, snippet_width=snippet_width_for(self.console)
            ))

    # -- drawing (Rich's refresh thread) --------------------------------------

    def _renderable(self) -> RenderableType:
        with self._lock:
            mirror = self._mirror
            progress = self._progress()
            key = (mirror.version, self.console.width, self.console.height)
            cached = self._cache if self._cache is not None and self._cache[0] == key else None
            view = mirror.view() if cached is None else None
            active = mirror.active
        if progress is None:
            return Text("MCTS starting…", style="dim")
        if cached is not None:
            tree = cached[1]
        elif view is None:
            tree = Text("")
        else:
            tree = render_tree(
                view,
                active=active,
                max_lines=max(3, self.console.height - _CHROME_LINES),
                snippet_width=snippet_width_for(self.console),
                title=self.title,
            )
            self._cache = (key, tree)
        return Group(render_header(progress), tree)

    def _progress(self) -> Progress | None:
        """Counters for the header; call with the lock held."""
        m = self._mirror
        if self._started is None:
            return None
        done = m.result is not None
        if done:
            elapsed = m.result.stats.seconds
        else:
            elapsed = self._clock() - self._started
        running = m.simulations if done else m.simulations + 1
        if self.simulations:
            running = min(running, self.simulations)
        return Progress(running, self.simulations or 0, len(m.nodes), m.tokens + m.in_flight, elapsed, done)
