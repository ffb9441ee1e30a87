"""Search-tree nodes: the live, mutable ``Node`` the search owns, and the
frozen ``NodeView`` snapshot that everything else (UI thread, ``--save-tree``,
tests) reads.

A node is one action: the tokens one continuation appended to its parent's
state. The state itself is the concatenation of token ids from the root, never
re-tokenised text (docs/algorithm.md section 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Handle, StopReason
from .scoring import mean_confidence


@dataclass(eq=False)
class Node:
    """One node of the live tree. Only the search thread touches it."""

    id: int
    parent: Node | None
    depth: int
    tokens: tuple[int, ...] = ()
    confidences: tuple[float | None, ...] = ()  # one per token; None for forced tokens
    text: str = ""
    stop: StopReason | None = None
    handle: Handle | None = None  # live KV state; None once released
    terminal: bool = False
    reflection: bool = False  # this node inserted the reflection phrase
    children: list[Node] = field(default_factory=list)
    visits: int = 0
    total_value: float = 0.0
    rollouts: int = 0  # values backpropagated starting at this very node
    virtual_loss: int = 0  # pending selections this iteration (multi-leaf)
    terminal_value: float | None = None  # value of the finished path (terminal nodes)
    path_length: int = 0  # tokens from the root to the end of this node

    @property
    def mean_value(self) -> float:
        """Q/N, 0 for an unvisited node."""
        return self.total_value / self.visits if self.visits else 0.0

    @property
    def step_confidence(self) -> float | None:
        """Mean c_i over this step's sampled tokens (paper eq. 1); None if it has none."""
        return mean_confidence(self.confidences)

    @property
    def expanded(self) -> bool:
        return bool(self.children)

    def path(self) -> list[Node]:
        """Nodes from the root's first child down to this node (root excluded)."""
        nodes: list[Node] = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def path_tokens(self) -> list[int]:
        return [t for n in self.path() for t in n.tokens]

    def path_confidences(self) -> list[float | None]:
        return [c for n in self.path() for c in n.confidences]

    def path_reflected(self) -> bool:
        """Whether this path already holds a reflection (at most one per path)."""
        node: Node | None = self
        while node is not None:
            if node.reflection:
                return True
            node = node.parent
        return False


@dataclass(frozen=True)
class NodeView:
    """Immutable copy of a node and its subtree, safe to read from any thread."""

    id: int
    parent_id: int | None
    depth: int
    text: str
    tokens: tuple[int, ...]
    confidences: tuple[float | None, ...]
    visits: int
    total_value: float
    mean_value: float
    step_confidence: float | None
    rollouts: int
    reflection: bool
    terminal: bool
    stop: StopReason | None
    children: tuple[NodeView, ...] = ()

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def walk(self) -> Iterator[NodeView]:
        """This view and every descendant, depth first, children in id order."""
        yield self
        for child in self.children:
            yield from child.walk()


def snapshot(node: Node) -> NodeView:
    """Frozen copy of ``node``'s subtree (pass the root for the whole tree)."""
    return NodeView(
        id=node.id,
        parent_id=node.parent.id if node.parent is not None else None,
        depth=node.depth,
        text=node.text,
        tokens=node.tokens,
        confidences=node.confidences,
        visits=node.visits,
        total_value=node.total_value,
        mean_value=node.mean_value,
        step_confidence=node.step_confidence,
        rollouts=node.rollouts,
        reflection=node.reflection,
        terminal=node.terminal,
        stop=node.stop,
        children=tuple(snapshot(c) for c in node.children),
    )


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(float(x), digits)


def tree_to_dict(view: NodeView, *, digits: int = 6) -> dict[str, Any]:
    """JSON-ready dict of a snapshot (``--save-tree``, golden tests).

    Floats are rounded to ``digits`` so the file is stable across platforms.
    """
    return {
        "id": view.id,
        "depth": view.depth,
        "text": view.text,
        "tokens": list(view.tokens),
        "confidences": [_round(c, digits) for c in view.confidences],
        "visits": view.visits,
        "total_value": _round(view.total_value, digits),
        "mean_value": _round(view.mean_value, digits),
        "step_confidence": _round(view.step_confidence, digits),
        "rollouts": view.rollouts,
        "reflection": view.reflection,
        "terminal": view.terminal,
        "stop": view.stop.value if view.stop is not None else None,
        "children": [tree_to_dict(c, digits=digits) for c in view.children],
    }
