"""What a search returns: the answer, its path, the frozen tree and counters."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..backends.base import StopReason
from .node import NodeView


class StoppedBy(str, Enum):
    COMPLETED = "completed"  # every simulation ran
    BUDGET = "budget"  # the wall-clock budget ran out
    INTERRUPTED = "interrupted"  # KeyboardInterrupt (the caller re-raises / exits 130)
    SHOULD_STOP = "should_stop"  # the caller's should_stop() said so
    BACKEND_FAILED = "backend_failed"  # the backend broke mid-search (a remote server died); see ``error``


@dataclass(frozen=True)
class Rollout:
    """A finished path: root to a terminal state (paper eq. 2 value ``value``)."""

    node_id: int  # the node the rollout started from
    tokens: tuple[int, ...]  # every generated token from the root
    confidences: tuple[float | None, ...]  # per token; None for forced tokens
    value: float
    stop: StopReason
    n_rollout_tokens: int  # tokens past the node (0 when the node itself ended)


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

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_generated / self.seconds if self.seconds > 0 else 0.0


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
    error: str | None = None  # BACKEND_FAILED: the backend's one-line error
