"""Voting over finished rollouts (search/vote.py): answer keys, group weights,
the leader's share and the early-stop rule (no model needed)."""

from __future__ import annotations

import pytest

from marco_cli.backends.base import StopReason
from marco_cli.search.result import Rollout
from marco_cli.search.vote import agreed, answer_key, normalise, tally

END = StopReason.OUTPUT_END


def _r(key: str | None, value: float, stop: StopReason = END) -> Rollout:
    return Rollout(node_id=1, tokens=(), confidences=(), value=value, stop=stop, n_rollout_tokens=0, answer_key=key)


@pytest.mark.parametrize(
    "text",
    [
        "<Thought>16-3-4=9, 9*2</Thought>\n<Output>She makes $18 every day.</Output>",
        "<Thought>...</Thought><Output>18</Output>",
        "<Thought>...</Thought><Output>\\boxed{18.00}</Output>",
        "<Output>１８ dollars</Output>",  # full-width digits (Chinese answers)
    ],
)
def test_numeric_answers_group_by_value(text):
    assert answer_key(text, END) == "18"


def test_text_answers_group_by_normalised_output():
    a = answer_key("<Thought>x</Thought><Output>Paris.</Output>", END)
    b = answer_key("<Thought>y</Thought><Output>  **paris** </Output>", END)
    c = answer_key("<Output>Lyon</Output>", END)
    assert a == b == "paris" and c == "lyon"
    assert normalise("The  Eiffel\nTower!") == "the eiffel tower"


def test_loops_and_answerless_paths_abstain():
    assert answer_key("<Output>Output: \nSTARTER\n" * 20, StopReason.LOOP) is None
    # ran out of tokens inside the thought: no answer was given
    assert answer_key("<Thought>so we add 16 and", StopReason.LENGTH) is None
    assert answer_key("<Thought>x</Thought><Output></Output>", END) is None


def test_untagged_text_is_its_own_answer():
    assert answer_key("The answer is 7.", StopReason.EOS) == "7"


def test_groups_weigh_the_sum_of_values_not_the_count():
    rollouts = [_r("5", 0.9), _r("7", 0.4), _r("7", 0.4), _r(None, 0.99), _r("5", 0.2), _r("7", 0.35)]
    t = tally(rollouts)
    assert [g.key for g in t.groups] == ["7", "5"]
    assert t.groups[0].weight == pytest.approx(1.15) and t.groups[0].indices == (1, 2, 5)
    assert t.groups[1].weight == pytest.approx(1.1) and t.groups[1].indices == (0, 4)
    assert t.voters == 5 and t.mass == pytest.approx(2.25)
    assert t.share == pytest.approx(1.15 / 2.25)


def test_one_confident_rollout_loses_to_several_agreeing_ones():
    t = tally([_r("42", 0.95), _r("41", 0.5), _r("41", 0.5)])
    assert t.leader.key == "41"


def test_ties_go_to_more_rollouts_then_to_the_first_answer():
    assert tally([_r("a", 0.5), _r("b", 0.25), _r("b", 0.25)]).leader.key == "b"
    assert tally([_r("a", 0.5), _r("b", 0.5)]).leader.key == "a"
    assert tally([_r("b", 0.5), _r("a", 0.5)]).leader.key == "b"


def test_nobody_voted():
    t = tally([_r(None, 0.0, StopReason.LOOP)])
    assert t.leader is None and t.share == 0.0 and t.voters == 0


def test_agreement_needs_the_minimum_and_the_share():
    three = tally([_r("5", 0.8), _r("5", 0.7), _r("6", 0.3)])
    assert three.share == pytest.approx(0.8333, abs=1e-3)
    assert agreed(three, 0.75, 3)
    assert not agreed(three, 0.9, 3)
    assert not agreed(three, 0.75, 4)
    assert not agreed(three, None, 1)  # off
