"""Answers from k sampled chains of thought: self-consistency (majority vote)
and DeepConf-style confidence-weighted voting, offline on the same samples.

Self-consistency (Wang et al. 2022): each trace votes once for its extracted
answer; the answer with most votes wins.

Confidence voting (DeepConf, Fu et al. 2025, offline mode): each trace votes
with a weight, its confidence, and optionally only the most confident share of
the traces vote at all. DeepConf scores a trace from its tokens' top-k
log-probabilities; marco already has a token confidence of that kind, c_i
(Marco-o1 eq. 1, top-5 softmax of the chosen token), so the scores here are
built from it:

- ``mean``: the mean of c_i over the trace (Marco-o1 eq. 2, the value a search
  rollout gets);
- ``tail``: the mean over the last ``TAIL_TOKENS`` tokens, where the answer is
  written (DeepConf's tail confidence);
- ``window``: the lowest mean over any ``WINDOW_TOKENS`` consecutive tokens
  (DeepConf's lowest group confidence): one confused stretch marks the trace.

Traces without an extractable answer do not vote. Ties go to the answer whose
first vote came earliest (sample order), so a result never depends on dict or
set ordering.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

TAIL_TOKENS = 32
WINDOW_TOKENS = 16


class ConfScore(str, Enum):
    MEAN = "mean"
    TAIL = "tail"
    WINDOW = "window"


def mean_confidence(confidences: Sequence[float]) -> float:
    """Eq. 2, as the search scores a path (0.0 for an empty trace)."""
    # Imported here: `marco --help` reads ConfScore from this module and must
    # not load numpy and the search (test_help_loads_no_engine_search_or_server).
    from ..search.scoring import mean_confidence as eq2_mean

    return eq2_mean(confidences) or 0.0


def tail_confidence(confidences: Sequence[float], tail: int = TAIL_TOKENS) -> float:
    return mean_confidence(confidences[-tail:])


def window_confidence(confidences: Sequence[float], window: int = WINDOW_TOKENS) -> float:
    """Lowest mean over ``window`` consecutive tokens; a shorter trace is one window."""
    if len(confidences) <= window:
        return mean_confidence(confidences)
    total = sum(confidences[:window])
    lowest = total
    for i in range(window, len(confidences)):
        total += confidences[i] - confidences[i - window]
        lowest = min(lowest, total)
    return lowest / window


@dataclass(frozen=True)
class Trace:
    """One sampled chain of thought, as the vote sees it."""

    prediction: str | None  # extracted answer (canonical), None when there is none
    tokens: int
    mean: float
    tail: float
    window: float

    @classmethod
    def from_confidences(cls, prediction: str | None, confidences: Sequence[float | None]) -> Trace:
        conf = [float(c) for c in confidences if c is not None]  # None: a forced token, not sampled
        return cls(prediction, len(conf), mean_confidence(conf), tail_confidence(conf), window_confidence(conf))

    def score(self, kind: ConfScore) -> float:
        return {ConfScore.MEAN: self.mean, ConfScore.TAIL: self.tail, ConfScore.WINDOW: self.window}[kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "prediction": self.prediction,
            "tokens": self.tokens,
            "mean": round(self.mean, 6),
            "tail": round(self.tail, 6),
            "window": round(self.window, 6),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trace:
        return cls(
            data["prediction"], int(data["tokens"]), float(data["mean"]), float(data["tail"]), float(data["window"])
        )


@dataclass(frozen=True)
class Vote:
    prediction: str | None  # the winning answer, None when no trace had one
    weight: float  # its share of the voting weight, in [0, 1]
    voters: int  # traces that voted (after the top fraction, with an answer)


def keep_top(traces: Sequence[Trace], keep: float, kind: ConfScore) -> list[Trace]:
    """The ``ceil(keep * k)`` most confident traces (at least one), in sample
    order; equal scores keep the earlier sample."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    n = max(1, math.ceil(keep * len(traces) - 1e-9))  # 1e-9: 0.3 * 10 is 3.0000000000000004
    order = sorted(range(len(traces)), key=lambda i: (-traces[i].score(kind), i))
    chosen = sorted(order[:n])
    return [traces[i] for i in chosen]


def vote(traces: Sequence[Trace], *, weight: ConfScore | None = None, keep: float = 1.0) -> Vote:
    """Majority vote (``weight=None``), or votes weighted by each trace's
    ``weight`` score among the top ``keep`` fraction by that score."""
    if weight is not None and keep < 1:
        traces = keep_top(traces, keep, weight)
    totals: dict[str, float] = {}
    first: dict[str, int] = {}
    voters = 0
    for i, trace in enumerate(traces):
        if trace.prediction is None:
            continue
        voters += 1
        totals[trace.prediction] = totals.get(trace.prediction, 0.0) + (1.0 if weight is None else trace.score(weight))
        first.setdefault(trace.prediction, i)
    if not totals:
        return Vote(None, 0.0, 0)
    winner = min(totals, key=lambda a: (-totals[a], first[a]))
    mass = sum(totals.values())
    return Vote(winner, totals[winner] / mass if mass > 0 else 0.0, voters)


__all__ = [
    "TAIL_TOKENS",
    "WINDOW_TOKENS",
    "ConfScore",
    "Trace",
    "Vote",
    "keep_top",
    "mean_confidence",
    "tail_confidence",
    "vote",
    "window_confidence",
]
