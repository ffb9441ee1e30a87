"""Token confidence (Marco-o1 eq. 1) and the numpy sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marco_cli.backends.base import Sampling
from marco_cli.backends.sampling import sample, sample_with_confidence, top5_confidence


def _row() -> np.ndarray:
    # Top 5 logits are 5, 4, 3, 2, 1 (token ids 3, 0, 6, 1, 7); the rest are lower.
    row = np.full(10, -3.0, dtype=np.float32)
    row[[3, 0, 6, 1, 7]] = [5.0, 4.0, 3.0, 2.0, 1.0]
    row[9] = 0.0
    return row


def test_confidence_hand_computed():
    denom = sum(math.exp(v) for v in (5, 4, 3, 2, 1))
    assert top5_confidence(_row(), 3) == pytest.approx(math.exp(5) / denom)
    assert top5_confidence(_row(), 7) == pytest.approx(math.exp(1) / denom)


def test_confidence_token_outside_top5_keeps_its_own_numerator():
    denom = sum(math.exp(v) for v in (5, 4, 3, 2, 1))
    c = top5_confidence(_row(), 9)
    assert c == pytest.approx(math.exp(0) / denom)
    assert c < 0.2


def test_confidence_is_stable_for_huge_logits():
    row = _row() + 1e4
    assert top5_confidence(row, 3) == pytest.approx(top5_confidence(_row(), 3), rel=1e-4)
    assert 0.0 <= top5_confidence(row, 2) <= 1.0


def test_confidence_of_a_certain_token_is_one():
    row = np.array([100.0, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)
    assert top5_confidence(row, 0) == pytest.approx(1.0)


def test_greedy_is_argmax_and_uses_no_randomness():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert sample(_row(), Sampling(temperature=0.0), rng) == 3
    assert rng.bit_generator.state == state


def test_same_seed_same_tokens():
    logits = np.random.default_rng(1).normal(size=(20, 500)).astype(np.float32)
    s = Sampling(temperature=0.8, top_p=0.95, top_k=40, seed=7)

    def draw() -> list[int]:
        rng = np.random.default_rng(s.seed)
        return [sample(row, s, rng) for row in logits]

    assert draw() == draw()


def test_top_k_one_is_greedy():
    rng = np.random.default_rng(3)
    assert all(sample(_row(), Sampling(temperature=2.0, top_k=1), rng) == 3 for _ in range(20))


def test_top_p_restricts_to_the_head():
    # p(token 3) at T=1 is ~0.64: top_p=0.5 leaves only token 3.
    rng = np.random.default_rng(4)
    s = Sampling(temperature=1.0, top_p=0.5, top_k=40)
    assert {sample(_row(), s, rng) for _ in range(50)} == {3}


def test_samples_follow_the_distribution():
    row = np.log(np.array([0.5, 0.3, 0.2], dtype=np.float64)).astype(np.float32)
    rng = np.random.default_rng(5)
    s = Sampling(temperature=1.0, top_p=1.0, top_k=0)
    counts = np.bincount([sample(row, s, rng) for _ in range(4000)], minlength=3) / 4000
    assert counts == pytest.approx([0.5, 0.3, 0.2], abs=0.03)


def test_sample_with_confidence_matches_the_separate_functions():
    logits = np.random.default_rng(6).normal(size=(30, 1000)).astype(np.float32)
    for temp in (0.0, 0.8):
        s = Sampling(temperature=temp, top_k=3, seed=11)
        rng_a, rng_b = np.random.default_rng(11), np.random.default_rng(11)
        for row in logits:
            tok, conf = sample_with_confidence(row, s, rng_a)
            assert tok == sample(row, s, rng_b)
            assert conf == pytest.approx(top5_confidence(row, tok))
            assert 0.0 <= conf <= 1.0
