"""The loop guard: notice, while a continuation is generated, that the model
has fallen into degenerate repetition, so it ends there instead of at the
token cap (small models under greedy or low-temperature decoding often lock
into ``Output: \\nSTARTER`` x100 or "the the the ...").

The rule, on the sampled text of one continuation (forced text excluded):
it *loops* when it ends with at least ``MIN_REPEATS`` back-to-back copies of
one unit of 1 to ``MAX_UNIT`` characters, and those copies cover at least
``MIN_SPAN`` characters. Exact repetition only: a numbered list, a table
whose rows differ or a worked sum changes from line to line and never
matches. Short units need many copies (200 characters of "-" or "ha "), so
a Markdown rule, an underline or a few identical table rows stay legal; a
paragraph of 67+ characters repeated three times verbatim is a loop.
"""

from __future__ import annotations

MIN_REPEATS = 3  # copies of the unit, at least
MIN_SPAN = 200  # characters the copies cover together, at least
MAX_UNIT = 400  # longest unit looked for, in characters
_PROBE = 8  # tail characters whose earlier occurrences propose a period


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
    return None


def _extend_back(text: str, begin: int, period: int) -> int:
    """The first offset from which ``text`` stays ``period``-periodic to its end."""
    start = len(text) - period
    while start > begin and text[start - 1] == text[start - 1 + period]:
        start -= 1
    return start
