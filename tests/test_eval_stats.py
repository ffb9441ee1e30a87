"""Wilson interval, test@k and the per-mode summary."""

from __future__ import annotations

import pytest

from marco_cli.evaluation.stats import Outcome, mcnemar_p, paired_counts, summarize, wilson_interval


def test_wilson_known_values():
    # 8/10: the textbook Wilson 95 % interval is (0.490, 0.943)
    low, high = wilson_interval(0.8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    # MGSM-sized: 226/250 = 90.4 %
    low, high = wilson_interval(226 / 250, 250)
    assert low == pytest.approx(0.8617, abs=1e-3) and high == pytest.approx(0.9356, abs=1e-3)


def test_wilson_edges_stay_in_range_and_have_width():
    low, high = wilson_interval(0.0, 20)
    assert low == 0.0 and 0.1 < high < 0.2
    low, high = wilson_interval(1.0, 20)
    assert high == 1.0 and 0.8 < low < 0.9
    assert wilson_interval(0.5, 0) == (0.0, 1.0)


def _o(q, mode, sample, correct, tokens=10, seconds=1.0):
    return Outcome(q, mode, sample, correct, tokens, seconds)


def test_summary_accuracy_test_at_k_and_paired_difference():
    outcomes = [
        _o("a", "cot", 0, True),
        _o("a", "cot", 1, False),
        _o("b", "cot", 0, False),
        _o("b", "cot", 1, False),
        _o("a", "mcts", 0, True, 100, 4.0),
        _o("a", "mcts", 1, True, 100, 4.0),
        _o("b", "mcts", 0, False, 300, 6.0),
        _o("b", "mcts", 1, True, 300, 6.0),
        _o("c", "mcts", 0, True, 100, 4.0),
        _o("c", "mcts", 1, True, 100, 4.0),  # cot never reached c
    ]
    cot, mcts = summarize(outcomes, ["cot", "mcts"], k=2)
    assert (cot.questions, cot.samples, cot.k) == (2, 4, 2)
    assert cot.accuracy == pytest.approx(0.25)  # a: 1/2, b: 0/2
    assert cot.test_at_k == pytest.approx(0.5)  # a has a correct sample
    assert cot.diff is None
    assert mcts.accuracy == pytest.approx((1 + 0.5 + 1) / 3)
    assert mcts.test_at_k == 1.0
    assert mcts.mean_tokens == pytest.approx(1000 / 6) and mcts.mean_seconds == pytest.approx(28 / 6)
    # paired on a and b only: mcts 0.75 - cot 0.25
    assert mcts.diff == pytest.approx(0.5)
    low, high = wilson_interval(mcts.accuracy, 3)
    assert (mcts.ci_low, mcts.ci_high) == (low, high)  # interval counts questions, not samples


def test_summary_of_a_mode_without_answers():
    (_cot, mcts) = summarize([_o("a", "cot", 0, True)], ["cot", "mcts"], k=1)
    assert mcts.questions == 0 and mcts.accuracy == 0.0 and mcts.diff is None
    assert set(mcts.to_json()) >= {
        "mode",
        "accuracy",
        "ci_low",
        "ci_high",
        "test_at_k",
        "mean_tokens",
        "mean_seconds",
        "diff",
    }


def test_mcnemar_exact_p_values():
    assert mcnemar_p(0, 0) == 1.0  # no discordant question: nothing to tell
    assert mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(5, 0) == pytest.approx(2 / 32)  # 5 heads in 5 fair tosses, two-sided
    assert mcnemar_p(14, 7) == mcnemar_p(7, 14) == pytest.approx(0.1892, abs=1e-4)
    assert mcnemar_p(16, 6) == pytest.approx(0.0525, abs=1e-4)


def test_paired_counts_only_the_questions_both_modes_answered():
    def o(q, mode, correct, sample=0):
        return Outcome(f"q{q}", mode, sample, correct, 10, 1.0)

    outcomes = [
        o(1, "cot", False),
        o(1, "mcts", True),  # a win
        o(2, "cot", True),
        o(2, "mcts", False),  # a loss
        o(3, "cot", True),
        o(3, "mcts", True),  # a tie tells nothing
        o(4, "cot", False),  # mcts never answered it
        o(5, "cot", False),
        o(5, "cot", True, 1),
        o(5, "mcts", True),  # shares: 1/2 against 1
    ]
    assert paired_counts(outcomes, "mcts", "cot") == (2, 1)
    assert paired_counts(outcomes, "cot", "mcts") == (1, 2)
