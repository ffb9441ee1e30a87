"""Drawing a search tree: a pure function from a frozen ``NodeView`` snapshot
to a rich ``Tree`` (ARCHITECTURE items 7 and 8). Nothing here knows about
time, terminals or threads, so the live view, ``marco replay``, chat's
``/tree`` and the tests all draw the same thing.

Each node is one line, figures first so a narrow terminal cuts the step's
text, never the numbers::

    » n=4 q=0.73 c=0.81 ↺ Wait! Maybe I made some mistakes…

- ``n`` visits, ``q`` mean value (Q/N), ``c`` the step's confidence (mean c_i
  of its sampled tokens), the last two coloured red -> green;
- ``»`` (and bold) marks the current best path: the most-visited child at
  every level, the path the final answer will follow;
- ``▶`` (and reverse video) the node whose children are being rolled out;
- ``↺`` a reflection node, ``∎`` a finished path (``</Output>`` or EOS).

Trees taller than ``max_lines`` collapse: the best path and the active node
always show; other nodes are added most-visited first while lines remain, and
what does not fit becomes one ``+n more`` line under its parent.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.style import Style
from rich.text import Text
from rich.tree import Tree

from ..search import NodeView
from .scale import confidence_style, figure

BEST_MARK = "» "
ACTIVE_MARK = "▶ "
REFLECTION_MARK = "↺ "
TERMINAL_MARK = " ∎"
_BEST_STYLE = Style(bold=True)
_ACTIVE_STYLE = Style(reverse=True)
_MORE_STYLE = Style(dim=True, italic=True)
# Rich draws bold guides with heavy box characters, for every child of a node
# alike; plain guides keep the glyphs the same with or without colour.
_GUIDE_STYLE = Style()
_OFF_PATH_GUIDE = Style(dim=True)


FIGURES_WIDTH = 26  # "» ▶ n=12 q=0.73 c=0.81 " before a node's text


def snippet_width_at(columns: int) -> int:
    """Node text width that fills lines of ``columns`` characters."""
    return max(16, columns - FIGURES_WIDTH)


def snippet_width_for(console: Console) -> int:
    """Node text width that fills the console's lines: the live tree, the
    final folded tree, ``marco replay`` and chat's ``/tree`` all use it."""
    return snippet_width_at(console.width)


def snippet(text: str, width: int) -> str:
    """``text`` on one line (whitespace runs become one space), at most ``width`` chars."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    return line[: max(0, width - 1)] + "…"


def best_path_ids(view: NodeView) -> tuple[int, ...]:
    """Most-visited child at every level (ties: higher mean value, then the
    older node), root excluded: the path ``Pick.MOST_VISITED`` follows."""
    path: list[int] = []
    node = view
    while node.children:
        node = max(node.children, key=lambda c: (c.visits, c.mean_value, -c.id))
        if node.visits == 0:
            break  # nothing below was tried yet: no "best" to show
        path.append(node.id)
    return tuple(path)


def node_label(node: NodeView, *, best: bool = False, active: bool = False, snippet_width: int = 48) -> Text:
    label = Text(no_wrap=True, overflow="ellipsis")
    if best:
        label.append(BEST_MARK)
    if active:
        label.append(ACTIVE_MARK)
    label.append(f"n={node.visits} q=")
    label.append(
        figure(node.mean_value if node.visits else None), confidence_style(node.mean_value if node.visits else None)
    )
    label.append(" c=")
    label.append(figure(node.step_confidence), confidence_style(node.step_confidence))
    label.append(" ")
    if node.reflection:
        label.append(REFLECTION_MARK, "magenta")
    label.append(snippet(node.text, snippet_width))
    if node.terminal:
        label.append(TERMINAL_MARK)
    if best:
        label.stylize(_BEST_STYLE)
    if active:
        label.stylize(_ACTIVE_STYLE)
    return label


def root_label(root: NodeView, title: str = "root") -> Text:
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(title, _BEST_STYLE)
    label.append(f"  n={root.visits} q=")
    q = root.mean_value if root.visits else None
    label.append(figure(q), confidence_style(q))
    return label


def render_tree(
    view: NodeView,
    *,
    best_path: Sequence[int] | None = None,
    active: int | None = None,
    max_lines: int | None = None,
    path_only: bool = False,
    snippet_width: int = 48,
    title: str = "root",
) -> Tree:
    """The tree under ``view`` as a rich ``Tree``.

    ``best_path`` defaults to ``best_path_ids(view)``; pass the search's chosen
    path to emphasise that instead. ``max_lines`` bounds the lines drawn (None:
    everything); ``path_only`` keeps just the best path (and ``active``), every
    other subtree folded into ``+n more``.
    """
    best = set(best_path_ids(view) if best_path is None else best_path)
    keep = _forced(view, best, active)
    if path_only:
        shown = keep
    elif max_lines is None:
        shown = {n.id for n in view.walk()}
    else:
        shown = _fit(view, keep, max_lines)
    tree = Tree(root_label(view, title), guide_style=_GUIDE_STYLE)
    _add_children(tree, view, shown, best, active, snippet_width)
    return tree


def _add_children(
    branch: Tree, node: NodeView, shown: set[int], best: set[int], active: int | None, width: int
) -> None:
    hidden = 0
    for child in node.children:
        if child.id not in shown:
            hidden += _size(child)
            continue
        on_best = child.id in best
        label = node_label(child, best=on_best, active=child.id == active, snippet_width=width)
        sub = branch.add(label, guide_style=_GUIDE_STYLE if on_best else _OFF_PATH_GUIDE)
        _add_children(sub, child, shown, best, active, width)
    if hidden:
        branch.add(Text(f"+{hidden} more", style=_MORE_STYLE, no_wrap=True))


def _size(node: NodeView) -> int:
    return sum(1 for _ in node.walk())


def _forced(view: NodeView, best: set[int], active: int | None) -> set[int]:
    """Root, best path and the active node with its ancestors: always drawn."""
    keep = {view.id}
    for path in _paths_to(view, best | ({active} if active is not None else set())):
        keep.update(path)
    return keep


def _paths_to(view: NodeView, targets: set[int]) -> Iterable[list[int]]:
    """Root-to-node id paths for every node in ``targets`` that exists."""
    stack: list[tuple[NodeView, list[int]]] = [(view, [view.id])]
    while stack:
        node, path = stack.pop()
        if node.id in targets:
            yield path
        for child in node.children:
            stack.append((child, [*path, child.id]))


def _fit(view: NodeView, keep: set[int], max_lines: int) -> set[int]:
    """Greedily add the most-visited nodes (shallow first on ties) whose parent
    is drawn, while the lines they cost fit: the node's own line, plus a
    ``+n more`` line for its children if it has any, minus its parent's
    ``+n more`` line when it was the last hidden child."""
    by_id = {n.id: n for n in view.walk()}
    shown = set(keep)
    hidden = {n.id: sum(1 for c in n.children if c.id not in shown) for n in view.walk() if n.id in shown}
    lines = len(shown) + sum(1 for count in hidden.values() if count)
    frontier = [(-c.visits, c.depth, c.id) for nid in shown for c in by_id[nid].children if c.id not in shown]
    heapq.heapify(frontier)
    while frontier and lines < max_lines:
        _, _, nid = heapq.heappop(frontier)
        node = by_id[nid]
        assert node.parent_id is not None
        cost = 1 + (1 if node.children else 0) - (1 if hidden[node.parent_id] == 1 else 0)
        if lines + cost > max_lines:
            continue  # a cheaper node further down the queue may still fit
        shown.add(nid)
        lines += cost
        hidden[node.parent_id] -= 1
        hidden[nid] = len(node.children)
        for child in node.children:
            heapq.heappush(frontier, (-child.visits, child.depth, child.id))
    return shown


def count_lines(tree: Tree) -> int:
    """Labels in a rendered tree (each is one line: labels never wrap)."""
    return 1 + sum(count_lines(child) for child in tree.children)
