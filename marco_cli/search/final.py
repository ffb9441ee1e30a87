"""Choosing the answer once the search stops (docs/algorithm.md section 2, "Final answer").

- ``Pick.MOST_VISITED``: follow the most-visited child from the root (ties by
  mean value, then creation order) to a leaf, then finish that path greedily
  (temperature 0) unless it already ended. The visit count is the robust
  choice of classic MCTS: a high value seen once can be luck.
- ``Pick.BEST_VALUE``: the finished rollout with the highest eq. 2 value.
- ``Pick.VOTE``: the best rollout of the answer whose rollouts hold the most
  value (``vote.py``); best-value when no rollout gave an answer.

A looped path ranks below every path that ended normally in every pick: its
value is 0, best-value and vote rank it last, the most-visited walk avoids a
looped leaf, and a most-visited answer that loops gives way to the best
finished rollout that did not.

When the search stopped early (budget, should_stop, Ctrl-C) nothing more is
generated: the answer is the best finished rollout through the chosen leaf
(or anywhere, with best-value or when the leaf has none), else the partial
text of the chosen path. An early stop (the rollouts agreed) is a normal end.

Every pick is worked out for every search (``PickChoice``), so one run shows
what each would answer; only the active pick may generate tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.base import StopReason
from ..core.settings import Pick
from .mcts import MCTS
from .node import Node
from .result import PickChoice, Rollout, StoppedBy
from .vote import answer_key, tally

_FINISHED = (StoppedBy.COMPLETED, StoppedBy.EARLY_STOP)  # the greedy finish may run


@dataclass(frozen=True)
class Answer:
    leaf: Node | None  # last tree node of the chosen path
    tokens: tuple[int, ...]
    confidences: tuple[float | None, ...]
    value: float
    complete: bool
    interrupted: bool = False  # Ctrl-C arrived while finishing greedily
    stop: StopReason | None = None  # how the path ended (None: unfinished)

    @property
    def looped(self) -> bool:
        return self.stop is StopReason.LOOP


def _looped_leaf(node: Node) -> bool:
    return node.terminal and node.stop is StopReason.LOOP


def most_visited_leaf(root: Node) -> Node:
    node = root
    while node.children:
        node = max(node.children, key=lambda c: (not _looped_leaf(c), c.visits, c.mean_value, -c.id))
    return node


def _rank(r: Rollout) -> tuple[bool, float]:
    return (r.stop is not StopReason.LOOP, r.value)


def best_rollout(rollouts: list[Rollout]) -> Rollout | None:
    """Highest value, loops last; the earliest among equals (deterministic)."""
    best: Rollout | None = None
    for r in rollouts:
        if best is None or _rank(r) > _rank(best):
            best = r
    return best


def voted_rollout(rollouts: list[Rollout]) -> Rollout | None:
    """``--pick vote``'s choice: the best rollout of the heaviest answer group,
    or the best rollout of all when none gave an answer. ``--mode vote`` and
    ``benchmarks/tune_search.py`` choose the same way."""
    leader = tally(rollouts).leader
    return best_rollout([rollouts[i] for i in leader.indices] if leader else rollouts)


def from_rollout(search: MCTS, rollout: Rollout) -> Answer:
    return Answer(
        search.nodes[rollout.node_id], rollout.tokens, rollout.confidences, rollout.value, True, stop=rollout.stop
    )


def partial(search: MCTS, leaf: Node | None) -> Answer:
    """The chosen path as it stands (complete when its leaf is terminal)."""
    if leaf is None:
        return Answer(None, (), (), 0.0, False)
    tokens = tuple(leaf.path_tokens())
    confidences = tuple(leaf.path_confidences())
    stop = (leaf.stop or StopReason.LENGTH) if leaf.terminal else None
    value = search.value(tokens, confidences, stop)
    return Answer(leaf, tokens, confidences, value, complete=leaf.terminal, stop=stop)


def finish_greedily(search: MCTS, leaf: Node) -> Answer:
    """Continue the chosen leaf at temperature 0 to a terminal state."""
    (ending,) = search.rollout([leaf], greedy=True)
    tokens = tuple(leaf.path_tokens()) + ending.tokens
    confidences = tuple(leaf.path_confidences()) + ending.confidences
    value = search.value(tokens, confidences, ending.stop)
    return Answer(leaf, tokens, confidences, value, complete=True, stop=ending.stop)


def _best_value(search: MCTS) -> Answer:
    best = best_rollout(search.rollouts)
    assert search.root is not None
    return from_rollout(search, best) if best else partial(search, most_visited_leaf(search.root))


def _vote(search: MCTS) -> Answer:
    if tally(search.rollouts).leader is None:
        return _best_value(search)  # may be a partial path: no rollout finished
    best = voted_rollout(search.rollouts)
    assert best is not None
    return from_rollout(search, best)


def _most_visited(search: MCTS, stopped_by: StoppedBy, *, generate: bool) -> tuple[Answer, bool]:
    """The most-visited answer, and whether it is an estimate (the greedy
    finish was due but ``generate`` was off)."""
    assert search.root is not None
    leaf = most_visited_leaf(search.root)
    estimated = False
    if leaf.terminal:  # the path already ended: it is the answer as it stands
        answer = partial(search, leaf)
    elif stopped_by in _FINISHED and leaf.handle is not None and leaf is not search.root and generate:
        try:
            answer = finish_greedily(search, leaf)
        except KeyboardInterrupt:
            answer, _ = _most_visited(search, StoppedBy.INTERRUPTED, generate=False)
            answer = _with_interrupted(answer, True)
    else:
        estimated = stopped_by in _FINISHED and leaf.handle is not None and leaf is not search.root
        through_leaf = best_rollout([r for r in search.rollouts if r.node_id == leaf.id])
        best = through_leaf or best_rollout(search.rollouts)
        answer = from_rollout(search, best) if best else partial(search, leaf)
    if answer.looped:  # a loop never wins: the best path that ended normally does
        normal = [r for r in search.rollouts if r.stop is not StopReason.LOOP]
        better = best_rollout([r for r in normal if r.node_id == leaf.id]) or best_rollout(normal)
        if better is not None:
            answer = _with_interrupted(from_rollout(search, better), answer.interrupted)
    return answer, estimated


def _with_interrupted(answer: Answer, interrupted: bool) -> Answer:
    return Answer(
        answer.leaf, answer.tokens, answer.confidences, answer.value, answer.complete, interrupted, answer.stop
    )


def _by_pick(search: MCTS, pick: Pick, stopped_by: StoppedBy, *, generate: bool) -> tuple[Answer, bool]:
    if pick is Pick.BEST_VALUE:
        return _best_value(search), False
    if pick is Pick.VOTE:
        return _vote(search), False
    return _most_visited(search, stopped_by, generate=generate)


def choose_answer(search: MCTS, stopped_by: StoppedBy) -> tuple[Answer, tuple[PickChoice, ...]]:
    """The active pick's answer, and what every pick would answer."""
    if search.root is None:  # interrupted before the prompt was even evaluated
        return Answer(None, (), (), 0.0, False), ()
    active = search.settings.pick
    answer, _ = _by_pick(search, active, stopped_by, generate=True)
    if answer.interrupted:
        stopped_by = StoppedBy.INTERRUPTED
    choices = []
    for pick in Pick:
        chosen, estimated = (answer, False) if pick is active else _by_pick(search, pick, stopped_by, generate=False)
        text = search.backend.detokenize(chosen.tokens) if chosen.tokens else ""
        choices.append(
            PickChoice(
                pick=pick,
                text=text,
                answer_key=answer_key(text, chosen.stop or StopReason.LENGTH, search.reasoning) if text else None,
                value=chosen.value,
                node_id=chosen.leaf.id if chosen.leaf is not None else None,
                complete=chosen.complete,
                estimated=estimated,
            )
        )
    return answer, tuple(choices)
