"""The loop guard: notice, while a continuation is generated, that the model
has fallen into degenerate repetition, so it ends there instead of at the
token cap (small models under greedy or low-temperature decoding often lock
into ``Output: \\nSTARTER`` x100 or "the the the ...").

The rule, on the sampled text of one continuation (forced text excluded):
it *loops* when it ends with at least ``MIN_REPEATS`` back-to-back copies of
one unit of 1 to ``MAX_UNIT`` characters, and those copies cover at least
``MIN_SPAN`` characters; or when its last complete lines, each stripped of a
leading list counter ("7. ", "12) "), are one line at least ``MIN_REPEATS``
times covering ``MIN_SPAN`` characters ("23. 20 chickens = 20 * 3 = 60
chickens" then "24. ..." with the same text, seen on the embedded model).
Otherwise exact repetition only: a numbered list whose items differ ("1. 1",
"2. 2"), a table whose rows differ or a worked sum changes from line to line
and never matches. Short units need many copies (200 characters of "-" or
"ha "), so a Markdown rule, an underline or a few identical table rows stay
legal; a paragraph of 67+ characters repeated three times verbatim is a loop.
"""

from __future__ import annotations

import re

MIN_REPEATS = 3  # copies of the unit, at least
MIN_SPAN = 200  # characters the copies cover together, at least
MAX_UNIT = 400  # longest unit looked for, in characters
_PROBE = 8  # tail characters whose earlier occurrences propose a period
_COUNTER_RE = re.compile(r"\s*\d+[.):]\s+")


def loop_start(text: str, begin: int = 0) -> int | None:
    """Where the repetition begins in ``text`` if ``text[begin:]`` ends in a
    loop by the rule above, else None.

    Candidate periods are the distances back to earlier occurrences of the
    last few characters (nearest first), so a check costs a few string
    comparisons rather than one per possible unit length.
    """
    n = len(text)
    if n - begin < MIN_SPAN:
        return None
    probe = text[n - _PROBE :]
    lo = max(begin, n - MAX_UNIT - _PROBE)
    end = n - 1  # occurrences that end before the text does: period >= 1
    while (pos := text.rfind(probe, lo, end)) >= 0:
        period = n - (pos + _PROBE)
        span = max(MIN_SPAN, MIN_REPEATS * period)
        if n - begin >= span and text[n - span + period :] == text[n - span : n - period]:
            return _extend_back(text, begin, period)
        end = pos + _PROBE - 1
    return _counted_lines(text, begin)


def _extend_back(text: str, begin: int, period: int) -> int:
    """The first offset from which ``text`` stays ``period``-periodic to its end."""
    start = len(text) - period
    while start > begin and text[start - 1] == text[start - 1 + period]:
        start -= 1
    return start


def _counted_lines(text: str, begin: int) -> int | None:
    """Where a run of identical counted lines begins, if the text ends in one."""
    window = max(begin, len(text) - MAX_UNIT * MIN_REPEATS * 2)
    cut = text.rfind("\n", window)
    if cut < 0:
        return None
    lines = text[window:cut].split("\n")
    if window > begin:
        lines = lines[1:]  # the first may be a line cut in half by the window
    last = _uncounted(lines[-1]) if lines else ""
    if not last.strip():
        return None
    span, repeats = 0, 0
    for line in reversed(lines):
        if not _COUNTER_RE.match(line) or _uncounted(line) != last:
            break
        span += len(line) + 1
        repeats += 1
    if repeats >= MIN_REPEATS and span >= MIN_SPAN:
        return cut + 1 - span
    return None


def _uncounted(line: str) -> str:
    return _COUNTER_RE.sub("", line, count=1)
