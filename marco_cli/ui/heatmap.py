"""The confidence view (``--confidence``): the answer with every token tinted by
its confidence c_i (paper eq. 1), red (unsure) -> green (sure).

Token ids become text pieces here (``token_pieces``), because a multi-byte
character can be split across tokens: such a character is given to the token
that completes it. Forced tokens (the reflection phrase) have no confidence
and are drawn dim. Without colour (a pipe, ``NO_COLOR``) the heatmap is
exactly the plain text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text

from ..formats.reasoning import MARCO, ReasoningFormat
from .scale import confidence_style

if TYPE_CHECKING:
    from ..reasoner import Answer

Detokenize = Callable[[Sequence[int]], str]

_REPLACEMENT = "\ufffd"
_MAX_PENDING = 4  # a UTF-8 character spans at most 4 byte-level tokens


def token_pieces(detokenize: Detokenize, tokens: Sequence[int]) -> list[str]:
    """One text piece per token; joined they give ``detokenize(tokens)`` (up to
    characters the tokenizer itself cannot decode)."""
    pieces: list[str] = []
    start = 0  # first token whose text is not yet in ``pieces``
    for i in range(len(tokens)):
        text = detokenize(tokens[start : i + 1])
        unfinished = text.endswith(_REPLACEMENT) and i + 1 < len(tokens) and i - start < _MAX_PENDING
        if unfinished:
            pieces.append("")  # half a character: wait for the token that completes it
            continue
        pieces.append(text)
        start = i + 1
    return pieces


def render_confidence(pieces: Sequence[str], confidences: Sequence[float | None]) -> Text:
    """``pieces[i]`` styled by ``confidences[i]`` (missing confidences: dim)."""
    text = Text()
    for i, piece in enumerate(pieces):
        if piece:
            c = confidences[i] if i < len(confidences) else None
            text.append(piece, confidence_style(c))
    return text


def _span(full: str, part: str, start: int = 0) -> tuple[int, int] | None:
    if not part:
        return None
    at = full.rfind(part, start)
    return None if at < 0 else (at, at + len(part))


def _slice(pieces: Sequence[str], confidences: Sequence[float | None], lo: int, hi: int) -> Text:
    """The heatmap of characters ``lo:hi`` of ``"".join(pieces)``."""
    out: list[str] = []
    kept: list[float | None] = []
    pos = 0
    for i, piece in enumerate(pieces):
        a, b = max(lo, pos), min(hi, pos + len(piece))
        if a < b:
            out.append(piece[a - pos : b - pos])
            kept.append(confidences[i] if i < len(confidences) else None)
        pos += len(piece)
    return render_confidence(out, kept)


def answer_heatmap(
    pieces: Sequence[str],
    confidences: Sequence[float | None],
    *,
    thought: bool = False,
    reasoning: ReasoningFormat = MARCO,
) -> Text:
    """The answer part of a generation (as the model's format splits it),
    tinted; with ``thought=True`` the thought first, then a blank line, then
    the answer (the layout of ``--show-thoughts``)."""
    full = "".join(pieces)
    parsed = reasoning.parse(full)
    answer_at = _span(full, parsed.answer)
    answer = _slice(pieces, confidences, *answer_at) if answer_at else Text(parsed.answer)
    if not (thought and parsed.thought):
        return answer
    thought_at = full.find(parsed.thought)
    if thought_at < 0:
        head = Text(parsed.thought)
    else:
        head = _slice(pieces, confidences, thought_at, thought_at + len(parsed.thought))
    return Text("\n\n").join([head, answer])


def confidence_view(answer: "Answer", detokenize: Detokenize, *, thought: bool = False) -> Text:
    """An ``Answer`` as a heatmap (``--confidence`` in ask and chat); plain
    text when no tokens survived (e.g. Ctrl-C before the first one)."""
    if not answer.tokens:
        return Text(answer.answer)
    pieces = token_pieces(detokenize, answer.tokens)
    confidences: Sequence[float | None] = answer.confidences
    if answer.opened:  # the template's "<think>": part of the text, not of the tokens
        pieces, confidences = [answer.opened, *pieces], (None, *confidences)
    return answer_heatmap(pieces, confidences, thought=thought, reasoning=answer.reasoning)


def confidence_json(answer: "Answer", detokenize: Detokenize) -> list[dict[str, Any]]:
    """``[{"piece": "4", "c": 0.93}, ...]`` for ``--json --confidence``."""
    pieces = token_pieces(detokenize, answer.tokens)
    return [
        {"piece": p, "c": None if c is None else round(c, 6)}
        for p, c in zip(pieces, answer.confidences)
    ]


def legend() -> Text:
    """``confidence 0 ▇▇▇▇▇▇▇▇▇▇▇ 1``: the scale, for a terminal."""
    text = Text("confidence 0 ", style="dim")
    for step in range(11):
        text.append("▇", confidence_style(step / 10))
    text.append(" 1", style="dim")
    return text
