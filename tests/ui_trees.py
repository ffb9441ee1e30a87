"""Small hand-built search trees and results for the drawing tests."""

from __future__ import annotations

from marco_cli.backends.base import StopReason
from marco_cli.search import NodeView, SearchResult, SearchStats, StoppedBy


def node(id, parent, depth, text, visits, total, conf, children=(), *, reflection=False, terminal=False):
    return NodeView(
        id=id,
        parent_id=parent,
        depth=depth,
        text=text,
        tokens=(),
        confidences=(),
        visits=visits,
        total_value=total,
        mean_value=total / visits if visits else 0.0,
        step_confidence=conf,
        rollouts=0,
        reflection=reflection,
        terminal=terminal,
        stop=StopReason.OUTPUT_END if terminal else None,
        children=tuple(children),
    )


def small_tree() -> NodeView:
    """root -> 1 (best) -> 3 (best) -> 5 (terminal); 1 -> 4 (reflection); root -> 2 -> 6 (unvisited)."""
    return node(
        0,
        None,
        0,
        "",
        5,
        3.5,
        None,
        [
            node(
                1,
                0,
                1,
                "<Thought>\nFirst, add two\nand three.",
                3,
                2.4,
                0.81,
                [
                    node(
                        3,
                        1,
                        2,
                        "That gives five.",
                        2,
                        1.7,
                        0.9,
                        [
                            node(5, 3, 3, "<Output>5</Output>", 1, 0.9, 0.95, terminal=True),
                        ],
                    ),
                    node(
                        4,
                        1,
                        2,
                        "Wait! Maybe I made some mistakes! I need to rethink from scratch.",
                        1,
                        0.5,
                        None,
                        reflection=True,
                    ),
                ],
            ),
            node(
                2,
                0,
                1,
                "Let me think about this very long step text that goes on and on and on",
                2,
                1.1,
                0.42,
                [
                    node(6, 2, 2, "x", 0, 0.0, 0.3),
                ],
            ),
        ],
    )


def wide_tree(width: int = 6) -> NodeView:
    """root with ``width`` children, child i visited i times, each with two leaves."""
    kids = []
    next_id = width + 1
    for i in range(1, width + 1):
        leaves = []
        for _ in range(2):
            leaves.append(node(next_id, i, 2, f"leaf {next_id}", 0, 0.0, 0.5))
            next_id += 1
        kids.append(node(i, 0, 1, f"step {i}", i, i * 0.5, 0.5, leaves))
    return node(0, None, 0, "", sum(range(1, width + 1)), 10.0, None, kids)


def small_result(stopped_by: StoppedBy = StoppedBy.COMPLETED, complete: bool = True) -> SearchResult:
    root = small_tree()
    views = {v.id: v for v in root.walk()}
    return SearchResult(
        answer_text="<Thought>\nFirst, add two\nand three.That gives five.<Output>5</Output>",
        tokens=(),
        confidences=(),
        path=(views[1], views[3], views[5]),
        root=root,
        stats=SearchStats(
            simulations=5,
            rollouts=5,
            iterations=5,
            nodes=7,
            max_depth=3,
            tokens_generated=420,
            tokens_evaluated=600,
            seconds=12.0,
        ),
        stopped_by=stopped_by,
        value=0.9,
        complete=complete,
    )
