"""The loop guard's rule (backends/loops.py) and its place in the stop matcher:
degenerate repetition stops, legit lists and tables do not (no model needed)."""

from __future__ import annotations

import pytest

from marco_cli.backends.base import Stop, StopReason
from marco_cli.backends.loops import MIN_REPEATS, MIN_SPAN, loop_start
from marco_cli.backends.stops import ContinuationText

OUTPUT_END = Stop("</Output>", StopReason.OUTPUT_END)

# What the embedded model wrote through `marco serve ... +mcts` (issue 12).
STARTER = "<Thought>\nLet me think.\n</Thought>\n<Output>\n" + "Output: \nSTARTER\n" * 100


def _first_loop_at(text: str) -> int | None:
    """Characters fed (one at a time, as tokens arrive) before the guard fires."""
    for n in range(1, len(text) + 1):
        if loop_start(text[:n]) is not None:
            return n
    return None


@pytest.mark.parametrize(
    "text",
    [
        STARTER,
        "The answer is " + "the " * 80,
        "so " + "ha" * 150,
        "Step one.\n" + "-" * 300,
        # a long paragraph verbatim three times
        "Intro.\n" + ("Janet sells 16 - 3 - 4 = 9 duck eggs a day at $2 each, so she makes $18 every day.\n" * 3),
        "\n" * 250,
    ],
)
def test_degenerate_repetition_is_a_loop(text):
    at = _first_loop_at(text)
    assert at is not None
    start = loop_start(text[:at])
    # the repetition is found where it begins, not just at its end
    assert text[start : start + 6] in text[start + 6 : at]


def test_the_starter_loop_is_caught_after_a_dozen_copies_not_a_hundred():
    at = _first_loop_at(STARTER)
    unit = len("Output: \nSTARTER\n")
    assert at is not None and at < STARTER.index("<Output>") + 8 + 14 * unit


@pytest.mark.parametrize(
    "text",
    [
        "\n".join(f"{i}. Add {i} apples to the basket." for i in range(1, 60)),
        "| x | x^2 |\n|---|---|\n" + "\n".join(f"| {i} | {i * i} |" for i in range(1, 40)),
        "Total\n" + "=" * 80 + "\n" + "-" * 80 + "\n",
        # an empty board: identical rows, but fewer than MIN_SPAN characters
        "Board:\n" + "| | | | | | | | |\n" * 8,
        "2 + 2 + 2 + 2 + 2 + 2 = 12, and 3 * 4 = 12, so both give twelve.",
        "Monday: rest\nTuesday: run\nWednesday: rest\nThursday: run\nFriday: rest\n" * 2,
    ],
)
def test_lists_tables_and_rules_are_not_loops(text):
    assert _first_loop_at(text) is None


def test_the_rule_needs_both_repeats_and_span():
    unit = "abcdefghij" * 8 + "\n"  # 81 characters: 3 copies cover 243 >= MIN_SPAN
    assert loop_start("x" + unit * MIN_REPEATS) is not None
    assert loop_start("x" + unit * (MIN_REPEATS - 1)) is None
    short = "ab"  # many copies, but too few characters
    assert loop_start("x" + short * (MIN_SPAN // 2 - 2)) is None
    assert loop_start("x" + short * (MIN_SPAN // 2)) is not None


def test_text_before_begin_is_not_looked_at():
    text = "the " * 80
    assert loop_start(text) is not None
    assert loop_start(text, begin=len(text) - 100) is None


def _feed(ct: ContinuationText, text: str, step: int = 3):
    for i in range(0, len(text), step):
        match = ct.add(text[i : i + step].encode())
        if match is not None:
            return i // step + 1, match
    return None, None


def test_the_guard_ends_a_continuation_with_its_own_reason_keeping_every_token():
    ct = ContinuationText((OUTPUT_END,), loop_guard=True)
    n, match = _feed(ct, STARTER)
    assert match is not None and match.stop.reason is StopReason.LOOP
    assert match.cut == n  # nothing is cut: the tokens were streamed already
    assert match.start == len(ct.text)
    assert n * 3 < len(STARTER)  # long before the text ran out


def test_no_guard_no_loop_stop():
    ct = ContinuationText((OUTPUT_END,))
    assert _feed(ct, STARTER) == (None, None)


def test_a_real_stop_wins_over_the_guard():
    ct = ContinuationText((OUTPUT_END,), loop_guard=True)
    _, match = _feed(ct, "<Output>Paris</Output>" + "the " * 80)
    assert match.stop is OUTPUT_END


def test_forced_text_never_counts_as_a_loop():
    ct = ContinuationText((), loop_guard=True)
    assert ct.add(("again " * 60).encode(), forced=True) is None
    assert ct.add(b"Now something new.") is None


# What the embedded model wrote greedily for MGSM-En question 5.
CHICKENS = "1. 15 cups of feed = 15 * 3 = 45 cups of feed\n" + "".join(
    f"{i}. 20 chickens = 20 * 3 = 60 chickens\n" for i in range(2, 40)
)


def test_a_counted_list_of_one_line_is_a_loop():
    at = _first_loop_at(CHICKENS)
    assert at is not None and at < len(CHICKENS) // 3
    start = loop_start(CHICKENS[:at])
    assert CHICKENS[start:].startswith("2. 20 chickens")


def test_a_counted_list_whose_items_differ_is_not():
    assert _first_loop_at("".join(f"{i}. {i}\n" for i in range(1, 101))) is None
    assert _first_loop_at("".join(f"{i}) add {i} to the total\n" for i in range(1, 40))) is None
