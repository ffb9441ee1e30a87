"""Choosing the answer once the search stops (ALGORITHM.md section 2, "Final answer").

- ``Pick.MOST_VISITED``: follow the most-visited child from the root (ties by
  mean value, then creation order) to a leaf, then finish that path greedily
  (temperature 0) unless it already ended. The visit count is the robust
  choice of classic MCTS: a high value seen once can be luck.
- ``Pick.BEST_VALUE``: the finished rollout with the highest eq. 2 value.

When the search stopped early (budget, should_stop, Ctrl-C) nothing more is
generated: the answer is the best finished rollout through the chosen leaf
(or anywhere, with best-value or when the leaf has none), else the partial
text of the chosen path.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Pick
from .mcts import MCTS
from .node import Node
from .result import Rollout, StoppedBy
from .scoring import path_value


@dataclass(frozen=True)
class Answer:
    leaf: Node | None  # last tree node of the chosen path
    tokens: tuple[int, ...]
    confidences: tuple[float | None, ...]
    value: float
    complete: bool
    interrupted: bool = False  # Ctrl-C arrived while finishing greedily


def most_visited_leaf(root: Node) -> Node:
    node = root
    while node.children:
        node = max(node.children, key=lambda c: (c.visits, c.mean_value, -c.id))
    return node


def best_rollout(rollouts: list[Rollout]) -> Rollout | None:
    """Highest value; the earliest among equals (deterministic)."""
    best: Rollout | None = None
    for r in rollouts:
        if best is None or r.value > best.value:
            best = r
    return best


def from_rollout(search: MCTS, rollout: Rollout) -> Answer:
    return Answer(search.nodes[rollout.node_id], rollout.tokens, rollout.confidences, rollout.value, True)


def partial(search: MCTS, leaf: Node | None) -> Answer:
    """The chosen path as it stands (complete when its leaf is terminal)."""
    if leaf is None:
        return Answer(None, (), (), 0.0, False)
    tokens = tuple(leaf.path_tokens())
    confidences = tuple(leaf.path_confidences())
    value = path_value(tokens, confidences, search.settings.value_span, search.backend.detokenize, search.reasoning)
    return Answer(leaf, tokens, confidences, value, complete=leaf.terminal)


def finish_greedily(search: MCTS, leaf: Node) -> Answer:
    """Continue the chosen leaf at temperature 0 to a terminal state."""
    (ending,) = search.rollout([leaf], greedy=True)
    tokens = tuple(leaf.path_tokens()) + ending.tokens
    confidences = tuple(leaf.path_confidences()) + ending.confidences
    value = path_value(tokens, confidences, search.settings.value_span, search.backend.detokenize, search.reasoning)
    return Answer(leaf, tokens, confidences, value, complete=True)


def choose_answer(search: MCTS, stopped_by: StoppedBy) -> Answer:
    if search.root is None:  # interrupted before the prompt was even evaluated
        return Answer(None, (), (), 0.0, False)
    if search.settings.pick is Pick.BEST_VALUE:
        best = best_rollout(search.rollouts)
        return from_rollout(search, best) if best else partial(search, most_visited_leaf(search.root))

    leaf = most_visited_leaf(search.root)
    if leaf.terminal:  # the path already ended: it is the answer as it stands
        return partial(search, leaf)
    if stopped_by is StoppedBy.COMPLETED and leaf.handle is not None and leaf is not search.root:
        try:
            return finish_greedily(search, leaf)
        except KeyboardInterrupt:
            answer = choose_answer(search, StoppedBy.INTERRUPTED)
            return Answer(answer.leaf, answer.tokens, answer.confidences, answer.value, answer.complete, True)
    through_leaf = best_rollout([r for r in search.rollouts if r.node_id == leaf.id])
    best = through_leaf or best_rollout(search.rollouts)
    return from_rollout(search, best) if best else partial(search, leaf)
