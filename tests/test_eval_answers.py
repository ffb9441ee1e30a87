"""Answer extraction and numeric normalisation (MGSM/GSM8K scoring rules)."""

from __future__ import annotations

import pytest

from marco_cli.evaluation.answers import extract_answer, is_correct, reference_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<Thought>2+2 is 4, so 5 - 1 = 4</Thought><Output>The answer is 4.</Output>", "4"),
        ("<Thought>I think 12</Thought>\n<Output>\n18\n</Output>\nTotal: 99", "18"),  # Output span beats later text
        ("<Output>about 7 apples", "7"),  # missing </Output>: to the end
        ("So she makes 9 * 2 = 18 dollars.", "18"),  # no tags: last number of the whole text
        ("He made a profit of $70,000.", "70000"),  # $ and thousands commas
        ("1,234,567 people", "1234567"),
        ("pick 3,4 or 5", "5"),  # not a thousands group: a list
        ("the result is \\boxed{42} (check: 6*7)", "42"),  # \boxed wins over the last number
        ("\\boxed{1,000} and later \\boxed{-3}", "-3"),  # the last box
        ("first \\boxed{x = 12}", "12"),
        ("The temperature fell to -5 degrees.", "-5"),
        ("pages 3-5 of the book", "5"),  # a range, not minus five
        ("It costs 2.50 dollars", "2.5"),
        ("It is 18.00", "18"),
        ("So 0.5 of it", "0.5"),
        ("The answer is 18.", "18"),  # the full stop is not a decimal point
        ("<Output>１８</Output>", "18"),  # full-width digits (Chinese answers)
        ("total \u22127", "-7"),  # U+2212 minus sign
        ("I do not know.", None),
        ("", None),
        ("<Output></Output>", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18", "18"),
        ("5,600", "5600"),
        ("$18.", "18"),
        ("-3", "-3"),
        ("70000", "70000"),
        ("2.50", "2.5"),
        ("  7 ", "7"),
        ("１８", "18"),
        ("seven", None),
        ("3/4", None),
        ("", None),
    ],
)
def test_reference_answer(text, expected):
    assert reference_answer(text) == expected


def test_exact_numeric_match():
    assert is_correct(extract_answer("so 18.0"), reference_answer("18"))
    assert not is_correct(extract_answer("so 18.5"), reference_answer("18"))
    assert not is_correct(None, "18")
    assert not is_correct("18", None)
