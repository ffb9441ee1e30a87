"""Accuracy, its 95 % Wilson interval, test@k, and the per-mode summary.

Why Wilson and not p +/- 1.96*sqrt(p(1-p)/n): benchmark slices are small
(50 questions) and accuracies sit near 0 or 1, where the normal interval
leaves [0, 1] and has zero width at p = 0 or 1. Wilson (1927) stays inside
and keeps a sensible width there.

With several samples per question the samples are not independent, so the
interval counts questions, not samples: accuracy is the mean over questions
of each question's share of correct samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(p_hat: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``p_hat`` observed over ``n`` trials."""
    if n <= 0:
        return (0.0, 1.0)
    denom = 1 + z * z / n
    centre = (p_hat + z * z / (2 * n)) / denom
    half = z * math.sqrt(p_hat * (1 - p_hat) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Outcome:
    """One answered (question, mode, sample), as the summary needs it."""

    question_id: str
    mode: str
    sample: int
    correct: bool
    tokens: int
    seconds: float
    any_correct: bool | None = None  # a voting mode: whether any of its k samples was right


@dataclass(frozen=True)
class ModeSummary:
    mode: str
    questions: int  # questions with at least one sample
    samples: int  # answers counted
    k: int  # samples asked per question
    accuracy: float
    ci_low: float
    ci_high: float
    test_at_k: float  # share of questions with a correct answer among their samples
    mean_tokens: float  # generated tokens per answer (a search counts all its tokens)
    mean_seconds: float
    diff: float | None  # accuracy minus the first mode's, on the questions both answered
    tokens_per_question: float = 0.0  # everything generated for a question (all its samples)
    seconds_per_question: float = 0.0

    @property
    def accuracy_per_1k_tokens(self) -> float:
        """Accuracy points (0-100) bought per 1000 generated tokens per question."""
        return 100 * self.accuracy / (self.tokens_per_question / 1000) if self.tokens_per_question else 0.0

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("accuracy", "ci_low", "ci_high", "test_at_k", "diff"):
            if data[key] is not None:
                data[key] = round(data[key], 4)
        data["mean_tokens"] = round(self.mean_tokens, 1)
        data["mean_seconds"] = round(self.mean_seconds, 3)
        data["tokens_per_question"] = round(self.tokens_per_question, 1)
        data["seconds_per_question"] = round(self.seconds_per_question, 3)
        data["accuracy_per_1k_tokens"] = round(self.accuracy_per_1k_tokens, 3)
        return data


def _by_question(outcomes: Iterable[Outcome]) -> dict[str, list[Outcome]]:
    grouped: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        grouped.setdefault(outcome.question_id, []).append(outcome)
    return grouped


def _accuracy(grouped: dict[str, list[Outcome]], ids: Iterable[str]) -> float:
    shares = [sum(o.correct for o in grouped[q]) / len(grouped[q]) for q in ids]
    return sum(shares) / len(shares) if shares else 0.0


def _test_at_k(group: list[Outcome]) -> bool:
    return any(o.correct or bool(o.any_correct) for o in group)


def summarize(outcomes: Sequence[Outcome], modes: Sequence[str], k: int | Mapping[str, int]) -> list[ModeSummary]:
    """One summary per mode, in ``modes`` order; the first mode is the baseline.
    ``k``: samples per question, one number or one per mode."""
    grouped = {m: _by_question(o for o in outcomes if o.mode == m) for m in modes}
    base = grouped[modes[0]] if modes else {}
    summaries = []
    for mode in modes:
        per_q = grouped[mode]
        rows = [o for group in per_q.values() for o in group]
        n = len(per_q)
        accuracy = _accuracy(per_q, per_q)
        low, high = wilson_interval(accuracy, n)
        shared = [q for q in per_q if q in base]
        diff = None
        if mode != modes[0] and shared:
            # paired: both modes on the same questions, so an interrupted run compares fairly
            diff = _accuracy(per_q, shared) - _accuracy(base, shared)
        summaries.append(
            ModeSummary(
                mode=mode,
                questions=n,
                samples=len(rows),
                k=k if isinstance(k, int) else k[mode],
                accuracy=accuracy,
                ci_low=low,
                ci_high=high,
                test_at_k=sum(_test_at_k(g) for g in per_q.values()) / n if n else 0.0,
                mean_tokens=sum(o.tokens for o in rows) / len(rows) if rows else 0.0,
                mean_seconds=sum(o.seconds for o in rows) / len(rows) if rows else 0.0,
                diff=diff,
                tokens_per_question=sum(o.tokens for o in rows) / n if n else 0.0,
                seconds_per_question=sum(o.seconds for o in rows) / n if n else 0.0,
            )
        )
    return summaries


def paired_counts(outcomes: Sequence[Outcome], mode: str, baseline: str) -> tuple[int, int]:
    """(questions ``mode`` got more right than ``baseline``, the other way),
    over the questions both answered. With one answer per question: right
    where the baseline was wrong, and the reverse; the ties tell nothing."""
    grouped = _by_question(outcomes)
    wins = losses = 0
    for group in grouped.values():
        a = [o.correct for o in group if o.mode == mode]
        b = [o.correct for o in group if o.mode == baseline]
        if not a or not b:
            continue
        share_a, share_b = sum(a) / len(a), sum(b) / len(b)
        wins += share_a > share_b
        losses += share_b > share_a
    return wins, losses


def mcnemar_p(wins: int, losses: int) -> float:
    """Exact two-sided McNemar p-value: how likely a split of the discordant
    questions at least this uneven is when both modes are equally good (each
    discordant question a fair coin). Why paired: both modes answered the same
    questions, so the questions' own difficulty cancels out, and a 7-point gap
    whose Wilson intervals overlap can still be told from chance, or not."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail: float = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)
