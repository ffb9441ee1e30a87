"""The thought/answer splitter: streamed pieces, joined, are the whole-text
split, whatever the chunking; with ``thought_first`` a model that skips
``<Thought>`` leaks no tag into the answer."""

from __future__ import annotations

import random

import pytest

from marco_cli.formats.reasoning import MARCO
from marco_cli.formats.split import CONTENT, REASONING, ThoughtSplitter, split

TEXTS = [
    "<Thought>\nlet me think\n\nstep two\n</Thought>\n<Output>\n42 apples\n</Output>",
    "<Thought>a</Thought>\nb<Output>c</Output>",
    "<Thought>only a thought</Thought>",
    "<Thought>a thought</Thought>\nthen a plain answer",
    "<Thought>never closed",
    "<Output>just the answer",
    "So 2 + 2 is 4.\n<Output>4</Output>.",
    "So 2 + 2 is 4.\n</Thought>\n<Output>4</Output>",
    "Paris is the capital <b>of</b> France.",
    "  \n ",
    "<Outp",
    "",
]


def streamed(text: str, cuts: list[int], *, thought_first: bool) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    splitter = ThoughtSplitter(thought_first=thought_first)
    parts: list[tuple[str, str]] = []
    start = 0
    for cut in [*cuts, len(text)]:
        parts += splitter.feed(text[start:cut])
        start = cut
    parts += splitter.close()
    joined = tuple("".join(t for c, t in parts if c == channel) for channel in (REASONING, CONTENT))
    return parts, joined


@pytest.mark.parametrize("thought_first", [False, True])
@pytest.mark.parametrize("text", TEXTS)
def test_any_chunking_joins_to_the_whole_text_split(text, thought_first):
    rng = random.Random(7)
    for _ in range(30):
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text), rng.randint(0, 12))))
        _, joined = streamed(text, cuts, thought_first=thought_first)
        assert joined == split(text, thought_first=thought_first)


@pytest.mark.parametrize("text", [t for t in TEXTS if t.lstrip().startswith("<") and "<b>" not in t])
def test_tagged_text_splits_like_parse(text):
    parsed = MARCO.parse(text)
    for thought_first in (False, True):
        assert split(text, thought_first=thought_first) == (parsed.thought, parsed.answer)


def test_a_skipped_thought_tag_leaks_nothing_into_the_answer():
    text = "To add 2 and 2, count on.\n\nSo 2 + 2 is 4.\n<Output>4</Output>."
    parts, joined = streamed(text, list(range(1, len(text))), thought_first=True)  # one character at a time
    assert joined == ("To add 2 and 2, count on.\n\nSo 2 + 2 is 4.", "4")
    assert joined == (MARCO.parse(text).thought, MARCO.parse(text).answer)
    assert all("<" not in t and ">" not in t for c, t in parts if c == CONTENT)


def test_text_without_any_tag_is_both_thought_and_answer_when_thought_first():
    assert split("Paris.", thought_first=True) == ("Paris.", "Paris.")
    assert split("Paris.") == ("", "Paris.")  # the terminal's default: all answer, live
