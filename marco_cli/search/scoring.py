"""Scoring a path by the model's own confidence (Marco-o1, arXiv 2411.14405).

The backend already reports, for every sampled token, the paper's eq. 1
confidence ``c_i = exp(p(t_i)) / sum_{k=1..5} exp(p(t_k))`` (a softmax over the
top-5 raw logits). Here we only aggregate: eq. 2, ``v = (1/n) sum_i c_i``.
Forced tokens (the reflection phrase) were never sampled, so they carry
``None`` and are left out of every mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..backends.base import StopReason
from ..core.settings import ValueSpan
from ..formats.reasoning import MARCO, ReasoningFormat


def mean_confidence(confidences: Sequence[float | None]) -> float | None:
    """Mean of the sampled tokens' c_i (paper eq. 2); None when there are none."""
    values = np.array([c for c in confidences if c is not None], dtype=np.float64)
    if values.size == 0:
        return None
    # Clip: a backend rounding 1.0000001 must not push a value out of [0, 1].
    return float(np.clip(values.mean(), 0.0, 1.0))


def _first_prefix(n: int, predicate: Callable[[int], bool]) -> int:
    """Smallest k in [0, n] with predicate(k) true (predicate is monotone); n if none."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def output_span(
    tokens: Sequence[int],
    detokenize: Callable[[Sequence[int]], str],
    reasoning: ReasoningFormat = MARCO,
) -> tuple[int, int] | None:
    """Token range [start, end) of the answer: inside ``<Output>...</Output>``,
    after ``</think>``, or after the last ``Answer:`` line, by the format.

    Works on token ids: the tags may be split over several tokens, so the
    boundaries are found by detokenizing prefixes (binary search: a prefix's
    text only grows). None when the text does not show where the answer starts.
    """
    text = detokenize(tokens)
    bounds = reasoning.answer_bounds(text)
    if bounds is None:
        return None
    content_at, close_at = bounds
    n = len(tokens)
    # The first token that starts after the opening tag ends.
    start = _first_prefix(n, lambda k: len(detokenize(tokens[:k])) >= content_at)
    if close_at >= len(text):
        return start, n
    # The token holding the first character of the closing tag is not content.
    end = _first_prefix(n, lambda k: len(detokenize(tokens[:k])) > close_at) - 1
    return start, max(start, end)


def finished_value(
    tokens: Sequence[int],
    confidences: Sequence[float | None],
    stop: StopReason | None,
    span: ValueSpan,
    detokenize: Callable[[Sequence[int]], str],
    reasoning: ReasoningFormat = MARCO,
) -> float:
    """Eq. 2 value of a finished path; 0 when it looped (below any path that
    ended normally). A search's rollouts and ``--mode vote``'s chains alike."""
    if stop is StopReason.LOOP:
        return 0.0
    return path_value(tokens, confidences, span, detokenize, reasoning)


def path_value(
    tokens: Sequence[int],
    confidences: Sequence[float | None],
    span: ValueSpan,
    detokenize: Callable[[Sequence[int]], str],
    reasoning: ReasoningFormat = MARCO,
) -> float:
    """Value v of a finished path (paper eq. 2), in [0, 1].

    ``ValueSpan.ROLLOUT`` averages every sampled token from the root to the
    end of the rollout; ``ValueSpan.OUTPUT`` only the answer's
    tokens (``output_span``, by the model's format), falling back to the whole
    path when the answer cannot be found or has no sampled token. A path with no sampled token is worth 0.
    """
    if span is ValueSpan.OUTPUT:
        bounds = output_span(tokens, detokenize, reasoning)
        if bounds is not None:
            inside = mean_confidence(confidences[bounds[0] : bounds[1]])
            if inside is not None:
                return inside
    whole = mean_confidence(confidences)
    return 0.0 if whole is None else whole


def token_confidences(n_forced: int, sampled: Sequence[float]) -> tuple[float | None, ...]:
    """One entry per token of a continuation: None for forced tokens, then c_i."""
    return (None,) * n_forced + tuple(float(c) for c in sampled)
