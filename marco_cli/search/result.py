"""What a search returns: the answer, its path, the frozen tree and counters."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..backends.base import StopReason
from ..formats.reasoning import MARCO, ReasoningFormat
from ..core.settings import Pick
from .node import NodeView


class StoppedBy(str, Enum):
    COMPLETED = "completed"  # every simulation ran
    BUDGET = "budget"  # the wall-clock budget ran out
    INTERRUPTED = "interrupted"  # KeyboardInterrupt (the caller re-raises / exits 130)
    SHOULD_STOP = "should_stop"  # the caller's should_stop() said so
    BACKEND_FAILED = "backend_failed"  # the backend broke mid-search (a remote server died); see ``error``
    EARLY_STOP = "early_stop"  # the finished rollouts agreed (--early-stop)


@dataclass(frozen=True)
class Rollout:
    """A finished path: root to a terminal state (paper eq. 2 value ``value``)."""

    node_id: int  # the node the rollout started from
    tokens: tuple[int, ...]  # every generated token from the root
    confidences: tuple[float | None, ...]  # per token; None for forced tokens
    value: float
    stop: StopReason
    n_rollout_tokens: int  # tokens past the node (0 when the node itself ended)
    answer_key: str | None = None  # its final answer for the vote (vote.answer_key); None abstains


@dataclass(frozen=True)
class SearchStats:
    simulations: int  # leaves selected and evaluated
    rollouts: int  # finished paths scored
    iterations: int
    nodes: int  # root included
    max_depth: int
    tokens_generated: int  # sampled tokens, over all requests of this search
    tokens_evaluated: int  # every token the backend decoded (its own counter)
    seconds: float
    finish_tokens: int = 0  # of tokens_generated: sampled after the search to finish the answer

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_generated / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class PickChoice:
    """What one ``--pick`` rule answers from this search, so one search shows
    how most-visited, best-value and vote compare."""

    pick: Pick
    text: str  # the chosen path's whole text
    answer_key: str | None  # its vote key (None: looped, or no answer)
    value: float
    node_id: int | None  # the last tree node of the path
    complete: bool
    # most-visited when another pick was active: its path was not finished
    # greedily (that costs tokens), so this is its best finished rollout
    estimated: bool = False


@dataclass(frozen=True)
class VoteSummary:
    """The vote over every finished rollout when the search stopped."""

    answer_key: str | None  # the leading answer
    share: float  # its share of the voters' value mass
    voters: int  # rollouts with an answer (loops and answerless paths abstain)
    answers: int  # distinct answers


@dataclass(frozen=True)
class SearchResult:
    answer_text: str  # the chosen complete path as the model wrote it (thought + output)
    tokens: tuple[int, ...]  # generated tokens of that path
    confidences: tuple[float | None, ...]  # per token; None marks forced tokens
    path: tuple[NodeView, ...]  # chosen nodes, root's child first (root excluded)
    root: NodeView  # the whole tree, frozen
    stats: SearchStats
    stopped_by: StoppedBy
    value: float  # eq. 2 value of the chosen path
    complete: bool  # False when no finished path existed (partial text)
    rollouts: tuple[Rollout, ...] = ()  # every finished path, in scoring order
    reasoning: ReasoningFormat = MARCO  # the model's format: how answer_text splits
    stop: StopReason | None = None  # how the chosen path ended (None: unfinished)
    picks: tuple[PickChoice, ...] = ()  # one per Pick, in Pick order
    vote: VoteSummary | None = None
    error: str | None = None  # BACKEND_FAILED: the backend's one-line error

    def pick(self, pick: Pick) -> PickChoice | None:
        return next((p for p in self.picks if p.pick is pick), None)
