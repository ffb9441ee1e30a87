"""Token confidence and sampling from one raw logits row (numpy only).

Both work on the raw (temperature-1) logits that llama.cpp returns, so the
search never needs llama.cpp's full-vocabulary log-probabilities: the
softmax normaliser over the whole vocabulary cancels in the paper's formula
(docs/engine.md, "Confidence from raw logits").

Randomness is passed in: every request owns a ``numpy.random.Generator``
seeded from its ``Sampling.seed`` and draws exactly one number per sampled
token, so a result never depends on which requests shared a batch.
"""

from __future__ import annotations

import numpy as np

from .base import Sampling

TOP_CONFIDENCE = 5
"""How many top tokens form the confidence normaliser (Marco-o1 v1, eq. 1)."""


def _top_indices(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries, unordered (O(n), no full sort)."""
    if k >= row.shape[0]:
        return np.arange(row.shape[0])
    return np.argpartition(row, -k)[-k:]


def _confidence(row: np.ndarray, top5: np.ndarray, token: int) -> float:
    # c_i = exp(l_i) / sum_{k<=5} exp(l_k)  (Marco-o1 v1, eq. 1). Shifting by the
    # largest top logit keeps exp() in range; a token outside the top 5 keeps its
    # own exp() as numerator, so its confidence is below 1/5.
    top_vals = row[top5].astype(np.float64)
    shift = top_vals.max()
    denom = np.exp(top_vals - shift).sum()
    return float(min(1.0, np.exp(float(row[token]) - shift) / denom))


def top5_confidence(logits_row: np.ndarray, token: int) -> float:
    """The paper's token confidence of ``token`` given raw logits ``logits_row``."""
    row = np.asarray(logits_row)
    return _confidence(row, _top_indices(row, TOP_CONFIDENCE), int(token))


def _draw(row: np.ndarray, cand: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """Temperature + top-p over the candidate indices ``cand``, one rng draw."""
    vals = row[cand].astype(np.float64) / sampling.temperature
    # Stable order (highest first, ties by token id) so the draw is reproducible.
    order = np.lexsort((cand, -vals))
    cand, vals = cand[order], vals[order]
    probs = np.exp(vals - vals[0])
    probs /= probs.sum()
    if sampling.top_p < 1.0:
        # Keep the smallest head whose mass reaches top_p (at least one token).
        keep = int(np.searchsorted(np.cumsum(probs), sampling.top_p) + 1)
        cand, probs = cand[:keep], probs[:keep]
    cdf = np.cumsum(probs)
    pick = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return int(cand[min(pick, len(cand) - 1)])


def sample(logits_row: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """Draw one token: greedy at temperature 0, else top-k, temperature, top-p."""
    return sample_with_confidence(logits_row, sampling, rng)[0]


def sample_with_confidence(logits_row: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> tuple[int, float]:
    """``sample`` and ``top5_confidence`` of the drawn token, sharing one partition
    of the row (the hot path of the engine: one call per generated token)."""
    row = np.asarray(logits_row)
    n = row.shape[0]
    k = n if sampling.top_k <= 0 else min(n, sampling.top_k)
    cand = _top_indices(row, max(k, TOP_CONFIDENCE))
    cand_vals = row[cand]
    # The top 5 are the 5 largest among the candidates (which hold the top k >= 5).
    top5 = cand if len(cand) <= TOP_CONFIDENCE else cand[np.argpartition(cand_vals, -TOP_CONFIDENCE)[-TOP_CONFIDENCE:]]
    if sampling.temperature <= 0:
        token = int(np.argmax(row))
    else:
        if len(cand) > k:  # the partition was widened to 5 for the confidence
            cand = cand[np.argpartition(cand_vals, -k)[-k:]]
        token = _draw(row, cand, sampling, rng)
    return token, _confidence(row, top5, token)
