"""Self-consistency and confidence-weighted voting over sampled traces:
trace scores, grouping, weights, the top fraction, ties, traces without answers."""

from __future__ import annotations

import pytest

from marco_cli.evaluation.voting import (
    ConfScore,
    Trace,
    keep_top,
    mean_confidence,
    tail_confidence,
    vote,
    window_confidence,
)


def _t(prediction, mean, tail=None, window=None, tokens=10):
    return Trace(prediction, tokens, mean, mean if tail is None else tail, mean if window is None else window)


def test_trace_scores_from_token_confidences():
    conf = [0.9] * 40 + [0.1] * 16 + [0.8] * 32
    assert mean_confidence(conf) == pytest.approx((0.9 * 40 + 0.1 * 16 + 0.8 * 32) / 88)
    assert tail_confidence(conf) == pytest.approx(0.8)  # the last 32 tokens
    assert window_confidence(conf) == pytest.approx(0.1)  # the 16-token dip
    assert window_confidence([0.5, 0.7]) == pytest.approx(0.6)  # shorter than a window: one window
    assert mean_confidence([]) == 0.0
    trace = Trace.from_confidences("18", conf)
    assert (trace.tokens, trace.score(ConfScore.WINDOW)) == (88, pytest.approx(0.1))
    assert Trace.from_json(trace.to_json()).prediction == "18"


def test_majority_vote_counts_each_trace_once():
    traces = [_t("18", 0.2), _t("20", 0.99), _t("18", 0.3), _t(None, 0.9), _t("20", 0.1), _t("18", 0.1)]
    result = vote(traces)
    assert (result.prediction, result.voters) == ("18", 5)
    assert result.weight == pytest.approx(3 / 5)


def test_confidence_weights_can_overturn_the_majority():
    traces = [_t("18", 0.2), _t("20", 0.99), _t("18", 0.3), _t("20", 0.95), _t("18", 0.1)]
    assert vote(traces).prediction == "18"  # 3 votes to 2
    weighted = vote(traces, weight=ConfScore.MEAN)
    assert weighted.prediction == "20"  # 1.94 against 0.6
    assert weighted.weight == pytest.approx(1.94 / 2.54)
    # each score is its own weight
    tail = [_t("18", 0.9, tail=0.1), _t("20", 0.1, tail=0.9)]
    assert vote(tail, weight=ConfScore.TAIL).prediction == "20"
    assert vote(tail, weight=ConfScore.MEAN).prediction == "18"


def test_top_fraction_keeps_the_most_confident_in_sample_order():
    traces = [_t("1", 0.5), _t("2", 0.9), _t("3", 0.1), _t("4", 0.9), _t("5", 0.7)]
    assert [t.prediction for t in keep_top(traces, 0.4, ConfScore.MEAN)] == ["2", "4"]
    assert [t.prediction for t in keep_top(traces, 0.5, ConfScore.MEAN)] == ["2", "4", "5"]  # ceil(2.5)
    assert [t.prediction for t in keep_top(traces, 0.01, ConfScore.MEAN)] == ["2"]  # at least one; tie: earlier
    assert len(keep_top(traces, 1.0, ConfScore.MEAN)) == 5
    # the filter decides: the low-confidence majority drops out
    crowd = [_t("7", 0.5), _t("7", 0.45), _t("7", 0.5), _t("9", 0.7), _t("9", 0.6)]
    assert vote(crowd, weight=ConfScore.MEAN).prediction == "7"
    assert vote(crowd, weight=ConfScore.MEAN, keep=0.4).prediction == "9"
    with pytest.raises(ValueError):
        keep_top(traces, 0, ConfScore.MEAN)


def test_ties_go_to_the_earliest_answer_and_no_answers_vote_none():
    assert vote([_t("5", 0.5), _t("6", 0.5), _t("6", 0.5), _t("5", 0.5)]).prediction == "5"
    assert vote([_t("6", 0.5), _t("5", 0.5)], weight=ConfScore.MEAN).prediction == "6"
    empty = vote([_t(None, 0.9), _t(None, 0.8)])
    assert (empty.prediction, empty.weight, empty.voters) == (None, 0.0, 0)
    assert vote([]).prediction is None
