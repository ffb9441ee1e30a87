"""Typed events the search emits, and the observer that receives them.

The search never draws or prints; a UI subscribes with an ``Observer`` (as in
httpie's ``BaseDisplay``/``DummyDisplay``). Events are frozen and carry ids
plus what a live view needs, never live nodes. Order within one iteration:
NodeCreated* (ReflectionInserted) -> NodeExpanded -> RolloutScored ->
Backpropagated (per scored node) -> IterationDone; SearchFinished last.
Observers are called on the search thread: keep them quick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..backends.base import StopReason

if TYPE_CHECKING:
    from .node import NodeView
    from .result import SearchResult


@dataclass(frozen=True)
class NodeCreated:
    node_id: int
    parent_id: int | None
    depth: int
    text: str  # the step's text (the UI shortens it)
    n_tokens: int
    step_confidence: float | None
    reflection: bool
    terminal: bool
    stop: StopReason | None


@dataclass(frozen=True)
class NodeExpanded:
    parent_id: int
    child_ids: tuple[int, ...]
    merged: int  # sampled duplicates dropped


@dataclass(frozen=True)
class ReflectionInserted:
    node_id: int


@dataclass(frozen=True)
class RolloutScored:
    node_id: int  # where the rollout started
    value: float
    n_tokens: int  # tokens of the rollout continuation (0: the node itself was terminal)
    answer_text: str  # the whole path's text, root to end of rollout
    stop: StopReason


@dataclass(frozen=True)
class Backpropagated:
    path_ids: tuple[int, ...]  # root first
    value: float


@dataclass(frozen=True)
class IterationDone:
    iteration: int  # 1-based
    simulations: int  # leaves processed so far
    nodes: int
    tokens: int  # sampled tokens so far
    elapsed: float  # seconds
    tree: NodeView  # frozen snapshot, safe to draw from another thread


@dataclass(frozen=True)
class TokensGenerated:
    """Progress inside one phase: pieces of text sampled so far by the
    backend call under way (about one per token, at most every
    ``PROGRESS_EVERY``), so a live counter moves during a long expansion or
    rollout instead of only when it ends. Sent only to a real observer."""

    in_flight: int


PROGRESS_EVERY = 8
"""Pieces between two ``TokensGenerated`` events (keeps observers cheap)."""


def token_progress(observer: Observer | None) -> Callable[[int, str], None] | None:
    """A backend token callback that reports ``TokensGenerated`` to ``observer``
    every ``PROGRESS_EVERY`` pieces; None when nobody watches, so a piped run
    pays nothing."""
    if observer is None or isinstance(observer, NullObserver):
        return None
    count = 0

    def on_token(_index: int, _piece: str) -> None:
        nonlocal count
        count += 1
        if count % PROGRESS_EVERY == 0:
            observer.on_event(TokensGenerated(count))

    return on_token


@dataclass(frozen=True)
class SearchFinished:
    result: SearchResult


Event = (
    NodeCreated
    | NodeExpanded
    | ReflectionInserted
    | RolloutScored
    | Backpropagated
    | IterationDone
    | TokensGenerated
    | SearchFinished
)


@runtime_checkable
class Observer(Protocol):
    def on_event(self, event: Event) -> None: ...


class NullObserver:
    """Ignores everything: the default for tests and piped runs."""

    def on_event(self, event: Event) -> None:
        return None


class ObserverGroup:
    """Hands every event to several observers in turn (e.g. the live view and
    the ``--save-tree`` recorder). ``None`` entries are skipped."""

    def __init__(self, *observers: Observer | None) -> None:
        self.observers = tuple(o for o in observers if o is not None)

    def on_event(self, event: Event) -> None:
        for observer in self.observers:
            observer.on_event(event)
