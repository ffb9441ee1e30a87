"""``marco replay``: a saved search drawn again, still or animated.

The saved events are turned back into the search's own typed events (node
data from the saved tree), so the animation goes through the very
``LiveSearchView`` a live search uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console, Group, RenderableType

from ..search import StopReason
from ..search import NodeView
from ..search.events import (
    Backpropagated,
    Event,
    IterationDone,
    NodeCreated,
    NodeExpanded,
    ReflectionInserted,
    RolloutScored,
    SearchFinished,
)
from ..treefile.io import SavedTree
from .live import LiveSearchView
from .mirror import SearchMirror
from .summary import render_summary
from .tree_view import render_tree, snippet

TITLE_CHARS = 60
MAX_PAUSE = 3.0
"""Seconds an animation waits at most between two events, whatever the file's
times and --speed say: a long quiet stretch has nothing to watch, and a time
of 1e12 (or a speed of 1e-300) must not turn into a sleep the OS refuses."""


def title(saved: SavedTree) -> str:
    """The root's label in a replay: the question, on one line."""
    return snippet(saved.question, TITLE_CHARS) or "root"


def render_saved(saved: SavedTree, *, snippet_width: int = 48) -> RenderableType:
    """The whole saved tree, the chosen path emphasised, then the summary."""
    tree = render_tree(saved.root, best_path=saved.chosen_path, snippet_width=snippet_width, title=title(saved))
    return Group(tree, render_summary(saved.result(), simulations=saved.simulations))


def replay_events(saved: SavedTree) -> Iterator[tuple[float, Event]]:
    """``(t, event)`` for every saved event, ``t`` in seconds since the search began."""
    views = {v.id: v for v in saved.root.walk()}
    rollouts = saved.data["rollouts"]
    mirror = SearchMirror()  # only to give IterationDone its snapshot
    scored = 0
    for d in saved.events:
        kind = d["type"]
        if kind == "rollout_scored":
            text = rollouts[scored]["text"] if scored < len(rollouts) else None
            event: Event = RolloutScored(d["node"], float(d["value"]), d["tokens"], text or "", StopReason(d["stop"]))
            scored += 1
        elif kind == "iteration_done":
            tree = mirror.view()
            assert tree is not None  # validated: the root is created first
            event = IterationDone(d["iteration"], d["simulations"], d["nodes"], d["tokens"], float(d["elapsed"]), tree)
        else:
            event = _simple(kind, d, views, saved)
        mirror.apply(event)
        yield float(d["t"]), event


def _simple(kind: str, d: dict[str, Any], views: dict[int, NodeView], saved: SavedTree) -> Event:
    if kind == "node_created":
        v = views[d["node"]]
        return NodeCreated(
            v.id, d["parent"], v.depth, v.text, v.n_tokens, v.step_confidence, v.reflection, v.terminal, v.stop
        )
    if kind == "node_expanded":
        return NodeExpanded(d["parent"], tuple(d["children"]), d["merged"])
    if kind == "reflection_inserted":
        return ReflectionInserted(d["node"])
    if kind == "backpropagated":
        return Backpropagated(tuple(d["path"]), float(d["value"]))
    return SearchFinished(saved.result())


def pause(gap: float, speed: float) -> float:
    """How long to wait for ``gap`` seconds of search time at ``speed``, capped."""
    if not gap > 0:
        return 0.0
    if gap >= MAX_PAUSE * speed:  # compared, not divided: a tiny speed cannot overflow
        return MAX_PAUSE
    return gap / speed


def play(
    saved: SavedTree,
    console: Console,
    *,
    speed: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Animate the saved events on ``console``, ``speed`` times as fast as
    they happened. The header's clock shows the search's own time."""
    now = 0.0
    view = LiveSearchView(
        console, simulations=saved.simulations, enabled=True, final=False, title=title(saved), clock=lambda: now
    )
    with view:
        for t, event in replay_events(saved):
            if t > now:
                sleep(pause(t - now, speed))
                now = t
            view.on_event(event)
