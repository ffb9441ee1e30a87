"""Selection: UCT (Kocsis & Szepesvari 2006) as docs/algorithm.md section 2 fixes it.

    score(child) = Q/N + c * sqrt(ln N_parent / N_child)

Q is the child's summed value, N its visit count; unvisited children come
first. Marco-o1 (arXiv 2411.14405, section 2.2) uses the eq. 2 confidence
value as the reward, so Q/N lies in [0, 1].

Virtual loss (several leaves per iteration): a node already chosen this
iteration counts ``virtual_loss`` extra visits worth 0 each, which lowers its
Q/N and its exploration bonus so the next selection spreads elsewhere. It is
deterministic: no randomness beyond the seeded tie-break.
"""

from __future__ import annotations

import math

import numpy as np

from .node import Node

_TIE_EPS = 1e-12  # scores this close are a tie; the seeded RNG decides


def uct_score(child: Node, parent_visits: int, exploration: float) -> float:
    """UCT score with virtual loss counted as visits of value 0; inf when unvisited."""
    n = child.visits + child.virtual_loss
    if n == 0:
        return math.inf
    bonus = exploration * math.sqrt(math.log(max(parent_visits, 1)) / n)
    return child.total_value / n + bonus


def select_child(node: Node, exploration: float, rng: np.random.Generator) -> Node:
    """The child with the highest UCT score; ties broken by ``rng``."""
    parent_visits = node.visits + node.virtual_loss
    scores = [uct_score(c, parent_visits, exploration) for c in node.children]
    best = max(scores)
    tied = [c for c, s in zip(node.children, scores) if s == best or best - s <= _TIE_EPS]
    if len(tied) == 1:
        return tied[0]
    return tied[int(rng.integers(len(tied)))]


def select_leaf(root: Node, exploration: float, rng: np.random.Generator) -> Node:
    """Walk down by UCT from ``root`` until a node without children."""
    node = root
    while node.children and not node.terminal:
        node = select_child(node, exploration, rng)
    return node


def add_virtual_loss(leaf: Node) -> None:
    node: Node | None = leaf
    while node is not None:
        node.virtual_loss += 1
        node = node.parent


def clear_virtual_loss(leaf: Node) -> None:
    node: Node | None = leaf
    while node is not None:
        node.virtual_loss = 0
        node = node.parent
