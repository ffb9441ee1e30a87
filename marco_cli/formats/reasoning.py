"""How a model lays out its reasoning: the ``reasoning`` key of a registry entry.

- ``marco``: Marco-o1's ``<Thought>...</Thought>`` then ``<Output>...</Output>``.
- ``think``: ``<think>...</think>`` then the answer as plain text (DeepSeek-R1
  distills, QwQ, Qwen3 in thinking mode). Their chat templates often open the
  ``<think>`` themselves at the end of the prompt; the reasoner then puts that
  tag in front of the generated text (``opened_by``), so a text always shows
  where its thought starts and every rule below works on the text alone.
- ``none``: no thought channel at all (plain instruct models). ``thought`` is
  None, and the answer is the text after the last line that starts with an
  ``Answer:`` or ``Output:`` marker (``Final answer:``, Markdown emphasis and
  a full-width colon allowed; an ``<Output>`` tag counts too), else the whole
  text, never with a marker word or tag in it. Such models are asked to
  end with an ``Answer:`` line (``NONE_INSTRUCTION``); small models asked
  for ``<Output>`` tags were seen to write "Output:" lines, hence both.

Everything that depends on the format asks this module: the prompt, the
parsed thought and answer, the streaming splitter (``split.py``), the search's
step and stop rules, where a reflection goes, ``--value-span output``, eval
scoring and translation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Reasoning(str, Enum):
    MARCO = "marco"
    THINK = "think"
    NONE = "none"


NONE_INSTRUCTION = (
    'Think step by step, then give the final answer on a last line of its own that starts with "Answer:".'
)
"""Asked of models without a thought format, so the answer marker rule has a marker to find."""


@dataclass(frozen=True)
class Parsed:
    thought: str | None  # None: the format has no thought channel
    answer: str
    has_tags: bool  # whether the text used the format's tags (or, for none, a marker)


@dataclass(frozen=True)
class ReasoningFormat:
    kind: Reasoning
    thought_open: str | None = None
    thought_close: str | None = None
    answer_open: str | None = None
    answer_close: str | None = None

    @property
    def name(self) -> str:
        return self.kind.value

    @property
    def has_thought(self) -> bool:
        return self.kind is not Reasoning.NONE

    @property
    def thought_ends(self) -> tuple[str, ...]:
        """Texts where the thought ends: a step stops there, and a v1
        reflection replaces the first one on a path. Without a thought
        format the answer marker plays that part."""
        if self.thought_close:
            return (self.thought_close,)
        return tuple(f"\n{m}:" for m in ("Answer", "Output"))

    def opened_by(self, prompt: str) -> str:
        """The thought tag the rendered prompt already opened (``<think>\\n``
        at the end of R1/QwQ templates), as it stands there; "" if none."""
        if not self.thought_open:
            return ""
        stripped = prompt.rstrip()
        if not stripped.endswith(self.thought_open):
            return ""
        return prompt[len(stripped) - len(self.thought_open) :]

    def parse(self, text: str) -> Parsed:
        if self.kind is Reasoning.MARCO:
            return _parse_marco(text)
        if self.kind is Reasoning.THINK:
            return _parse_think(text)
        return _parse_marker(text)

    def answer_bounds(self, text: str) -> tuple[int, int] | None:
        """Character range of the answer inside ``text`` (for ``--value-span
        output`` and eval scoring); None when the text does not show where the
        answer starts."""
        if self.kind is Reasoning.MARCO:
            found = _OUTPUT_RE.search(text)  # the first, as parse() takes it
            if not found:
                return None
            start = found.end()
            close = _CLOSE_OUTPUT_RE.search(text, start)
            return start, close.start() if close else len(text)
        if self.kind is Reasoning.THINK:
            close = _last(_CLOSE_THINK_RE, text)
            return (close.end(), len(text)) if close else None
        return _marker_segment(text)

    def answer_region(self, text: str) -> str:
        """The answer's text for scoring: inside the bounds, else all of it."""
        bounds = self.answer_bounds(text)
        return text[bounds[0] : bounds[1]] if bounds else text


MARCO = ReasoningFormat(Reasoning.MARCO, "<Thought>", "</Thought>", "<Output>", "</Output>")
THINK = ReasoningFormat(Reasoning.THINK, "<think>", "</think>")
NONE = ReasoningFormat(Reasoning.NONE)
FORMATS = {f.kind: f for f in (MARCO, THINK, NONE)}


def reasoning_format(kind: Reasoning | str) -> ReasoningFormat:
    return FORMATS[Reasoning(kind)]


# -- parsing ---------------------------------------------------------------------

_OPEN_RE = re.compile(r"<\s*Thought\s*>", re.IGNORECASE)
_CLOSE_THOUGHT_RE = re.compile(r"<\s*/\s*Thought\s*>", re.IGNORECASE)
_OUTPUT_RE = re.compile(r"<\s*Output\s*>", re.IGNORECASE)
_CLOSE_OUTPUT_RE = re.compile(r"<\s*/\s*Output\s*>", re.IGNORECASE)
_OPEN_THINK_RE = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_CLOSE_THINK_RE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)
# A line that starts with "Answer:" / "Output:" / "Final answer:", maybe in
# Markdown emphasis or a heading ("**Answer:**", "### Final Answer:").
# An <Output> tag counts too: a model without a format may still use Marco's.
_MARKER_RE = re.compile(
    r"^[ \t]*(?:[#>*_-]+[ \t]*)*(?:final[ \t]+)?(?:answer|output)[ \t]*[*_]*[ \t]*[:：][ \t]*[*_]*"
    r"|<\s*Output\s*>",
    re.IGNORECASE | re.MULTILINE,
)


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    matches = list(pattern.finditer(text))
    return matches[-1] if matches else None


def _parse_marco(text: str) -> Parsed:
    """docs/algorithm.md section 1:

    - ``<Output>`` present: the answer is what follows it, up to ``</Output>``
      when that exists (missing close tag: everything after the open tag).
    - only a thought (``<Thought>`` ... ``</Thought>``, no Output): the answer is
      what follows ``</Thought>``; if nothing does, the thought is all we have.
    - no tags at all: the whole text is the answer.
    """
    out = _OUTPUT_RE.search(text)
    if out:
        head, tail = text[: out.start()], text[out.end() :]
        close = _CLOSE_OUTPUT_RE.search(tail)
        answer = tail[: close.start()] if close else tail
        return Parsed(_strip_marco_thought(head), answer.strip(), True)
    close_t = _CLOSE_THOUGHT_RE.search(text)
    if close_t:
        thought = _strip_marco_thought(text[: close_t.start()])
        after = text[close_t.end() :].strip()
        return Parsed(thought, after or thought, True)
    if _OPEN_RE.match(text.lstrip()):
        thought = _strip_marco_thought(text)
        return Parsed(thought, thought, True)
    return Parsed("", text.strip(), False)


def _strip_marco_thought(text: str) -> str:
    text = _CLOSE_THOUGHT_RE.sub("", _OPEN_RE.sub("", text, count=1))
    return text.strip()


def _parse_think(text: str) -> Parsed:
    """``<think>`` thought ``</think>`` answer. The same fallbacks as Marco's:
    a thought that never closed is all there is; no tags, all answer."""
    close = _CLOSE_THINK_RE.search(text)
    if close:
        thought = _OPEN_THINK_RE.sub("", text[: close.start()], count=1).strip()
        after = text[close.end() :].strip()
        return Parsed(thought, after or thought, True)
    head = text.lstrip()
    opened = _OPEN_THINK_RE.match(head)
    if opened:
        thought = head[opened.end() :].strip()
        return Parsed(thought, thought, True)
    return Parsed("", text.strip(), False)


def _marker_segment(text: str) -> tuple[int, int] | None:
    """The text after the last marker line that is followed by any text (up
    to the next marker), as a character range."""
    markers = list(_MARKER_RE.finditer(text))
    for i in range(len(markers) - 1, -1, -1):
        start = markers[i].end()
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        close = _CLOSE_OUTPUT_RE.search(text, start, end)
        end = close.start() if close else end
        if _clean(text[start:end]):
            return start, end
    return None


def _parse_marker(text: str) -> Parsed:
    """No thought format: the text after the last marker line that has any,
    else the whole text. Marker words and stray Marco tags never reach the
    answer."""
    bounds = _marker_segment(text)
    if bounds is not None:
        return Parsed(None, _clean(text[bounds[0] : bounds[1]]), True)
    return Parsed(None, _clean(_MARKER_RE.sub("", text)), False)


_STRAY_TAG_RE = re.compile(r"<\s*/?\s*(?:Thought|Output)\s*>", re.IGNORECASE)


def _clean(text: str) -> str:
    return _STRAY_TAG_RE.sub("", text).strip()
