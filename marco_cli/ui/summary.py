"""The search's progress line and its closing summary: pure functions of
counters and a finished ``SearchResult``, like the tree itself."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..search import SearchResult, StoppedBy, StopReason
from .scale import confidence_style
from .tree_view import render_tree

ANSWER_CHARS = 240  # the panel quotes the answer; stdout has it in full


@dataclass(frozen=True)
class Progress:
    """What the header shows. ``simulation`` is the one running (1-based)."""

    simulation: int
    simulations: int  # the budget, --simulations
    nodes: int
    tokens: int  # sampled so far
    elapsed: float  # seconds
    finished: bool = False

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.elapsed if self.elapsed > 0 else 0.0


def render_header(p: Progress) -> Text:
    """``MCTS simulation 2/16 · 9 nodes · 412 tokens · 38.5 tok/s · 10.7s``"""
    state = "done" if p.finished else "simulation"
    header = Text(no_wrap=True, overflow="ellipsis")
    header.append("MCTS ", "bold cyan")
    of = f"/{p.simulations}" if p.simulations else ""
    header.append(f"{state} {p.simulation}{of}", "bold")
    header.append(f" · {p.nodes} nodes · {p.tokens} tokens · {p.tokens_per_second:.1f} tok/s · {p.elapsed:.1f}s")
    return header


def _stopped(result: SearchResult) -> str:
    why = result.stopped_by
    if why is StoppedBy.COMPLETED:
        return "completed"
    return {
        StoppedBy.BUDGET: "time budget spent",
        StoppedBy.INTERRUPTED: "interrupted",
        StoppedBy.BACKEND_FAILED: "the backend failed",
        StoppedBy.EARLY_STOP: "early stop: the rollouts agreed",
    }.get(why, "stopped")


def _vote_row(result: SearchResult) -> str | None:
    """``18 · 82% of the value of 4 rollouts (2 answers)``"""
    vote = result.vote
    if vote is None or vote.answer_key is None:
        return None
    key = _quote(vote.answer_key)
    return f"{key} · {vote.share:.0%} of the value of {counted(vote.voters, 'rollout')} ({counted(vote.answers, 'answer')})"


def counted(count: int, word: str) -> str:
    """``1 rollout``, ``2 rollouts``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def _quote(text: str) -> str:
    text = text.strip()
    return text if len(text) <= ANSWER_CHARS else text[: ANSWER_CHARS - 1] + "…"


def render_summary(result: SearchResult, *, simulations: int | None = None) -> Panel:
    """Answer, simulations, nodes, tokens and time in a panel."""
    stats = result.stats
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    answer = result.reasoning.parse(result.answer_text).answer if result.answer_text else ""
    grid.add_row("answer", Text(_quote(answer) or "(none)"))
    of = f"/{simulations}" if simulations else ""
    grid.add_row("simulations", f"{stats.simulations}{of} ({_stopped(result)}), {stats.rollouts} rollouts")
    grid.add_row("nodes", f"{stats.nodes} (depth {stats.max_depth})")
    grid.add_row("tokens", f"{stats.tokens_generated} generated · {stats.tokens_per_second:.1f} tok/s")
    vote = _vote_row(result)
    if vote is not None:
        grid.add_row("vote", vote)
    grid.add_row("time", f"{stats.seconds:.1f}s")
    value = Text(f"{result.value:.3f}", style=confidence_style(result.value))
    if not result.complete:
        value.append(" (unfinished path)", style="dim")
    elif result.stop is StopReason.LOOP:
        value.append(" (the path repeats itself: the loop guard ended it)", style="dim")
    grid.add_row("value", value)
    return Panel(grid, title="MCTS", title_align="left", expand=False)


def render_final(
    result: SearchResult, *, simulations: int | None = None, snippet_width: int = 48, title: str = "root"
) -> RenderableType:
    """After the search: the tree folded to the chosen path, then the summary."""
    tree = render_tree(
        result.root,
        best_path=[n.id for n in result.path],
        path_only=True,
        snippet_width=snippet_width,
        title=title,
    )
    return Group(tree, render_summary(result, simulations=simulations))
