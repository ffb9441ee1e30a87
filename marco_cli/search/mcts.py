"""Monte Carlo Tree Search over reasoning steps (Marco-o1 v1, arXiv 2411.14405 s. 2.2).

One iteration runs four named phases:

    select -> expand -> rollout -> backpropagate

- select: UCT from the root (``uct.py``), several leaves with virtual loss
  when ``leaves_per_iteration > 1``;
- expand: K sampled actions per leaf, all leaves' requests in ONE
  ``backend.extend`` call so siblings share a batch (docs/engine.md);
  identical siblings are merged;
- rollout: every new child continues to a terminal state, again in one
  batch; its eq. 2 value ``v = mean c_i`` over the whole path is its reward;
- backpropagate: ``visits += 1, total += v`` from that node up to the root.

A path the loop guard ended (``StopReason.LOOP``) is worth 0, whatever its
confidence: loops are confident, and a loop must never win. With
``early_stop`` the search ends between iterations once the finished
rollouts agree on an answer (``vote.py``), as ``StoppedBy.EARLY_STOP``.

All randomness comes from ``np.random.default_rng(settings.seed)`` drawn in a
fixed order (one seed per request, UCT tie-breaks), and every request carries
its own seed, so one seed and one backend give one tree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..backends.base import Backend, Continuation, Handle, Request, StopReason
from ..core.settings import SearchSettings
from ..formats.reasoning import MARCO, ReasoningFormat
from . import reflection, uct
from .actions import Actions
from .events import (
    Backpropagated,
    Event,
    NodeCreated,
    NodeExpanded,
    Observer,
    ReflectionInserted,
    RolloutScored,
    token_progress,
)
from .node import Node
from .result import Rollout, StoppedBy
from .scoring import finished_value, token_confidences
from .vote import agreed, answer_key, tally

_SEED_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class Ending:
    """Tokens generated past a node up to a terminal state."""

    tokens: tuple[int, ...]
    confidences: tuple[float | None, ...]
    stop: StopReason


class MCTS:
    """State of one search. Only ``run_search`` (``run.py``) drives it."""

    def __init__(
        self,
        backend: Backend,
        settings: SearchSettings,
        observer: Observer,
        should_stop: Callable[[], bool] | None,
        clock: Callable[[], float],
        reasoning: ReasoningFormat = MARCO,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.reasoning = reasoning
        self.observer = observer
        self.should_stop = should_stop
        self.clock = clock
        self.rng = np.random.default_rng(settings.seed)
        self.nodes: list[Node] = []
        self.rollouts: list[Rollout] = []
        self.root: Node | None = None
        self.actions: Actions | None = None
        self.simulations = 0
        self.iterations = 0
        self.tokens_generated = 0
        self.started = clock()

    # -- bookkeeping -------------------------------------------------------

    def emit(self, event: Event) -> None:
        self.observer.on_event(event)

    def elapsed(self) -> float:
        return self.clock() - self.started

    def halt_reason(self) -> StoppedBy | None:
        """Why to stop now, if at all. The first iteration always completes, so
        an anytime answer exists whatever the budget."""
        if self.iterations == 0:
            return None
        # First: it depends only on the tree, so one seed always stops alike.
        if agreed(tally(self.rollouts), self.settings.early_stop_share, self.settings.early_stop_min):
            return StoppedBy.EARLY_STOP
        if self.should_stop is not None and self.should_stop():
            return StoppedBy.SHOULD_STOP
        if self.settings.budget is not None and self.elapsed() >= self.settings.budget:
            return StoppedBy.BUDGET
        return None

    def seed(self) -> int:
        return int(self.rng.integers(0, _SEED_LIMIT))

    def extend(self, requests: Sequence[Request]) -> list[Continuation]:
        if not requests:
            return []
        results = self.backend.extend(list(requests), token_progress(self.observer))
        self.tokens_generated += sum(c.n_sampled for c in results)
        return results

    def release(self, handle: Handle | None) -> None:
        if handle is not None:
            self.backend.release(handle)

    def remaining(self, node: Node) -> int:
        return max(0, self.settings.max_tokens - node.path_length)

    def owes_reflection(self, node: Node) -> bool:
        assert self.actions is not None
        return reflection.owes_reflection(node, self.settings, len(self.actions.reflection), self.reasoning)

    def wants_rethink(self, node: Node) -> bool:
        assert self.actions is not None
        return reflection.wants_rethink(node, self.settings, len(self.actions.reflection), self.reasoning)

    def add_node(self, parent: Node | None, handle: Handle | None, cont: Continuation | None = None) -> Node:
        depth = 0 if parent is None else parent.depth + 1
        node = Node(id=len(self.nodes), parent=parent, depth=depth, handle=handle)
        if cont is not None:
            node.tokens = cont.tokens
            node.confidences = token_confidences(cont.n_forced, cont.confidences)
            node.text = cont.text
            node.stop = cont.stop
        node.path_length = (parent.path_length if parent else 0) + len(node.tokens)
        self.nodes.append(node)
        if parent is not None:
            parent.children.append(node)
        return node

    def announce(self, node: Node) -> None:
        self.emit(
            NodeCreated(
                node_id=node.id,
                parent_id=node.parent.id if node.parent else None,
                depth=node.depth,
                text=node.text,
                n_tokens=len(node.tokens),
                step_confidence=node.step_confidence,
                reflection=node.reflection,
                terminal=node.terminal,
                stop=node.stop,
            )
        )
        if node.reflection:
            self.emit(ReflectionInserted(node_id=node.id))

    def value(self, tokens: Sequence[int], confidences: Sequence[float | None], stop: StopReason | None) -> float:
        """Eq. 2 value of a path; 0 when it looped (below any path that ended normally)."""
        return finished_value(
            tokens, confidences, stop, self.settings.value_span, self.backend.detokenize, self.reasoning
        )

    def score(self, node: Node, ending: Ending | None) -> float:
        """Record a finished path through ``node`` and return its value."""
        tokens = tuple(node.path_tokens()) + (ending.tokens if ending else ())
        confidences = tuple(node.path_confidences()) + (ending.confidences if ending else ())
        stop = ending.stop if ending else (node.stop or StopReason.LENGTH)
        value = self.value(tokens, confidences, stop)
        n_new = len(ending.tokens) if ending else 0
        text = self.backend.detokenize(tokens)
        self.rollouts.append(
            Rollout(
                node.id,
                tokens,
                confidences,
                value,
                stop,
                n_new,
                answer_key(text, stop, self.reasoning),
                iteration=self.iterations + 1,  # run.py counts an iteration once it is done
                simulations=self.simulations,
                searched_tokens=self.tokens_generated,
            )
        )
        self.emit(RolloutScored(node.id, value, n_new, text, stop))
        return value

    # -- the four phases -----------------------------------------------------

    def select(self) -> list[Node]:
        """Up to ``leaves_per_iteration`` distinct leaves by UCT with virtual loss."""
        assert self.root is not None
        wanted = min(self.settings.leaves_per_iteration, self.settings.simulations - self.simulations)
        leaves: list[Node] = []
        for _ in range(wanted):
            leaf = uct.select_leaf(self.root, self.settings.exploration, self.rng)
            if any(leaf is chosen for chosen in leaves):
                break  # virtual loss could not steer elsewhere: nothing else worth a batch slot
            leaves.append(leaf)
            uct.add_virtual_loss(leaf)
        for leaf in leaves:
            uct.clear_virtual_loss(leaf)
        return leaves

    def expand(self, leaves: Sequence[Node]) -> list[Node]:
        """K sampled children per leaf (plus a rethink child when the leaf's step
        was unsure), every request in one batch. Returns the new children."""
        assert self.actions is not None
        requests: list[Request] = []
        owners: list[Node] = []
        reflecting: list[bool] = []  # the request drops the thought's end for a reflection
        for leaf in leaves:
            assert leaf.handle is not None
            owes = self.owes_reflection(leaf)
            for _ in range(self.settings.children):
                requests.append(self.actions.step(leaf.handle, self.remaining(leaf), self.seed(), reflect=owes))
                owners.append(leaf)
                reflecting.append(owes)
            if self.wants_rethink(leaf):
                requests.append(self.actions.reflect(leaf.handle))
                owners.append(leaf)
                reflecting.append(False)
        conts = self.extend(requests)

        children: list[Node] = []
        merged: dict[int, int] = {leaf.id: 0 for leaf in leaves}
        seen: set[tuple[int, tuple[int, ...]]] = set()
        to_reflect: list[Node] = []
        for cont, owner, owes, request in zip(conts, owners, reflecting, requests):
            key = (owner.id, cont.tokens)
            if key in seen:  # identical sibling: same state, keep one
                self.release(cont.handle)
                merged[owner.id] += 1
                continue
            seen.add(key)
            child = self.add_node(owner, cont.handle, cont)
            child.reflection = bool(request.forced)  # a dynamic-reflection child
            children.append(child)
            if owes and cont.stop is StopReason.THOUGHT_END and cont.handle is not None:
                to_reflect.append(child)
        self.insert_reflections(to_reflect)

        for leaf in leaves:
            self.release(leaf.handle)  # the children hold the shared prefix now
            leaf.handle = None
        for child in children:
            child.terminal = (child.stop is not None and child.stop.terminal) or self.remaining(child) == 0
            if child.terminal:
                self.release(child.handle)
                child.handle = None
            self.announce(child)
        for leaf in leaves:
            ids = tuple(c.id for c in leaf.children)
            self.emit(NodeExpanded(parent_id=leaf.id, child_ids=ids, merged=merged[leaf.id]))
        return children

    def insert_reflections(self, nodes: Sequence[Node]) -> None:
        """v1 reflection: the step ended at "</Thought>" (dropped); append the
        phrase to the step so the next action keeps thinking."""
        assert self.actions is not None
        conts = self.extend([self.actions.reflect(n.handle) for n in nodes if n.handle is not None])
        for node, cont in zip(nodes, conts, strict=True):
            self.release(node.handle)
            node.handle = cont.handle
            node.tokens += cont.tokens
            node.confidences += token_confidences(cont.n_forced, cont.confidences)
            node.text += cont.text
            node.path_length += len(cont.tokens)
            node.reflection = True
            if cont.stop is StopReason.CONTEXT:
                node.stop = cont.stop

    def rollout(self, nodes: Sequence[Node], *, greedy: bool = False) -> list[Ending]:
        """Continue each node to a terminal state, all in one batch (plus one
        batch for the rollouts whose thought ended and get the reflection)."""
        assert self.actions is not None
        owes = [self.owes_reflection(n) for n in nodes]
        requests = []
        for node, reflect in zip(nodes, owes):
            assert node.handle is not None
            seed = 0 if greedy else self.seed()
            requests.append(
                self.actions.rollout(node.handle, self.remaining(node), seed, reflect=reflect, greedy=greedy)
            )
        firsts = self.extend(requests)
        try:
            follows = self._after_reflection(nodes, owes, firsts, greedy)
        finally:
            for first in firsts:
                self.release(first.handle)  # kept only so the reflection could follow
        endings = []
        for i, first in enumerate(firsts):
            tokens = first.tokens
            confidences = token_confidences(first.n_forced, first.confidences)
            stop = first.stop
            if i in follows:
                f = follows[i]
                tokens += f.tokens
                confidences += token_confidences(f.n_forced, f.confidences)
                stop = f.stop
            endings.append(Ending(tokens, confidences, stop))
        return endings

    def _after_reflection(
        self, nodes: Sequence[Node], owes: Sequence[bool], firsts: Sequence[Continuation], greedy: bool
    ) -> dict[int, Continuation]:
        """Rollouts that ended their thought get the phrase and go on (one batch)."""
        assert self.actions is not None
        again = [i for i, (c, r) in enumerate(zip(firsts, owes)) if r and c.stop is StopReason.THOUGHT_END]
        requests = []
        for i in again:
            handle = firsts[i].handle
            assert handle is not None
            left = self.remaining(nodes[i]) - len(firsts[i].tokens)
            requests.append(self.actions.after_reflection(handle, left, 0 if greedy else self.seed(), greedy=greedy))
        return dict(zip(again, self.extend(requests)))

    def backpropagate(self, node: Node, value: float) -> None:
        """visits += 1 and total += v on every node from ``node`` to the root."""
        node.rollouts += 1
        ids = []
        walker: Node | None = node
        while walker is not None:
            walker.visits += 1
            walker.total_value += value
            ids.append(walker.id)
            walker = walker.parent
        self.emit(Backpropagated(path_ids=tuple(reversed(ids)), value=value))

    # -- one iteration ---------------------------------------------------------

    def iterate(self) -> StoppedBy | None:
        """Run one iteration; returns a stop reason when it had to halt midway."""
        leaves = self.select()
        self.simulations += len(leaves)
        expandable = [leaf for leaf in leaves if self.expandable(leaf)]
        children = self.expand(expandable)
        # Values in selection order: a terminal leaf repeats its known value, a
        # depth-limited leaf gets a fresh rollout, an expanded leaf's children one each.
        to_score: list[Node] = []
        for leaf in leaves:
            if leaf in expandable:
                to_score.extend(c for c in children if c.parent is leaf)
            else:
                to_score.append(leaf)
        halt = self.halt_reason()
        if halt is not None:
            return halt
        needs_rollout = [n for n in to_score if not n.terminal]
        endings = dict(zip((n.id for n in needs_rollout), self.rollout(needs_rollout)))
        for node in to_score:
            if node.terminal and node.terminal_value is None:
                node.terminal_value = self.score(node, None)
            value = node.terminal_value if node.terminal else self.score(node, endings[node.id])
            assert value is not None
            self.backpropagate(node, value)
        return None

    def expandable(self, node: Node) -> bool:
        return (
            not node.terminal and not node.children and node.handle is not None and node.depth < self.settings.max_depth
        )
