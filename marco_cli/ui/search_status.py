"""A one-line progress display on stderr while an MCTS turn searches.

A stand-in until the live tree UI lands: it shows that the search is alive
(simulations, nodes, tokens) without drawing the tree. Events arrive on the
search thread; rich's ``Status`` redraws on its own thread, so ``on_event``
only swaps the text.
"""

from __future__ import annotations

from rich.console import Console
from rich.status import Status


class SearchStatus:
    def __init__(self, console: Console, simulations: int) -> None:
        self._total = simulations
        self._status = Status("searching…", console=console)

    def __enter__(self) -> SearchStatus:
        self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._status.stop()

    def on_event(self, event: object) -> None:
        # IterationDone carries the counters; other events change nothing shown here
        simulations = getattr(event, "simulations", None)
        nodes = getattr(event, "nodes", None)
        if simulations is None or nodes is None:
            return
        tokens = getattr(event, "tokens", 0)
        self._status.update(
            f"searching… {simulations}/{self._total} simulations · {nodes} nodes · {tokens} tokens"
        )
