"""A copy of the search tree rebuilt from events alone, for drawing.

The search's own tree changes under its thread and its ``IterationDone``
snapshot arrives only once an iteration is over (after the slow rollouts).
The events carry everything a drawing needs (text, step confidence, visits
via ``Backpropagated``), so the live view and ``marco replay --animate``
replay them into this mirror and freeze it into a ``NodeView`` whenever they
draw. Children appear as soon as they are sampled, and one code path serves
a live search and a saved one. A test checks the mirror against the search's
snapshots.

Mirror views carry no token ids (``tokens == ()``); use ``step_confidence``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..search import StopReason
from ..search import NodeView, SearchResult
from ..search.events import (
    Backpropagated,
    Event,
    IterationDone,
    NodeCreated,
    NodeExpanded,
    RolloutScored,
    SearchFinished,
    TokensGenerated,
)


@dataclass
class _Entry:
    id: int
    parent_id: int | None
    depth: int
    text: str
    step_confidence: float | None
    reflection: bool
    terminal: bool
    stop: StopReason | None
    children: list[int] = field(default_factory=list)
    visits: int = 0
    total_value: float = 0.0
    rollouts: int = 0


class SearchMirror:
    """Not thread-safe by itself: the live view guards it with a lock."""

    def __init__(self) -> None:
        self.nodes: dict[int, _Entry] = {}
        self.root_id: int | None = None
        self.active: int | None = None  # parent of the latest expansion
        self.simulations = 0  # finished simulations
        self.tokens = 0  # exact at each IterationDone, estimated in between
        self.in_flight = 0  # pieces sampled by the backend call under way
        self.iterations = 0
        self.result: SearchResult | None = None
        self.version = 0  # bumps on every change, so drawings can be cached

    def apply(self, event: Event) -> None:
        if isinstance(event, TokensGenerated):
            self.in_flight = event.in_flight  # counters only: the tree is unchanged
            return
        self.version += 1
        if isinstance(event, (NodeCreated, RolloutScored, IterationDone, SearchFinished)):
            self.in_flight = 0  # what was in flight is counted in ``tokens`` now
        if isinstance(event, NodeCreated):
            self._created(event)
        elif isinstance(event, NodeExpanded):
            self.active = event.parent_id
        elif isinstance(event, RolloutScored):
            self.tokens += event.n_tokens
        elif isinstance(event, Backpropagated):
            for node_id in event.path_ids:
                entry = self.nodes[node_id]
                entry.visits += 1
                entry.total_value += event.value
            self.nodes[event.path_ids[-1]].rollouts += 1
        elif isinstance(event, IterationDone):
            self.simulations = event.simulations
            self.tokens = event.tokens
            self.iterations = event.iteration
        elif isinstance(event, SearchFinished):
            self.result = event.result
            self.active = None
            self.simulations = event.result.stats.simulations
            self.tokens = event.result.stats.tokens_generated

    def _created(self, e: NodeCreated) -> None:
        self.nodes[e.node_id] = _Entry(
            e.node_id, e.parent_id, e.depth, e.text, e.step_confidence, e.reflection, e.terminal, e.stop
        )
        if e.parent_id is None:
            self.root_id = e.node_id
        else:
            self.nodes[e.parent_id].children.append(e.node_id)
            self.tokens += e.n_tokens

    def view(self) -> NodeView | None:
        """A frozen copy of the tree so far (None before the root exists)."""
        if self.root_id is None:
            return None
        return self._freeze(self.nodes[self.root_id])

    def _freeze(self, e: _Entry) -> NodeView:
        return NodeView(
            id=e.id,
            parent_id=e.parent_id,
            depth=e.depth,
            text=e.text,
            tokens=(),
            confidences=(),
            visits=e.visits,
            total_value=e.total_value,
            mean_value=e.total_value / e.visits if e.visits else 0.0,
            step_confidence=e.step_confidence,
            rollouts=e.rollouts,
            reflection=e.reflection,
            terminal=e.terminal,
            stop=e.stop,
            children=tuple(self._freeze(self.nodes[c]) for c in e.children),
        )
