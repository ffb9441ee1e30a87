"""Numeric answer extraction and comparison for math benchmarks (MGSM, GSM8K).

Rule (the usual one for MGSM/GSM8K scoring): look inside the ``<Output>``
span when the model wrote one, else at the whole generation; a ``\\boxed{}``
value wins when present (it is an explicit answer marker), else the last
number. Numbers compare exactly as decimals after normalisation, so "18",
"18.00", "$18" and "18." are one answer and "1,234" is 1234. Fractions and
expressions are not evaluated: "3/4" reads as 4, as in the reference scorers.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

from .reasoning import Reasoning, ReasoningFormat

# 1,234,567.89 | 1234.5 | .5 -- a thousands group needs exactly 3 digits, so a
# list "3,4" stays two numbers.
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")
_OUTPUT_RE = re.compile(r"<\s*Output\s*>(.*?)(?:<\s*/\s*Output\s*>|$)", re.IGNORECASE | re.DOTALL)
_BOXED = "\\boxed{"


def normalize_text(text: str) -> str:
    """NFKC folds full-width digits (Chinese answers: "１８"), U+2212 is a minus."""
    return unicodedata.normalize("NFKC", text).replace("\u2212", "-")


def parse_number(text: str) -> Decimal | None:
    """A reference answer ("5,600", "$18", "18.", "-3") as a Decimal, or None
    when ``text`` is not exactly one number."""
    cleaned = normalize_text(text).strip().replace(",", "").replace("$", "").strip()
    cleaned = cleaned.rstrip(".").rstrip("%").strip()
    if not cleaned or not re.fullmatch(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)", cleaned):
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid input
        return None


def canonical(number: Decimal) -> str:
    """One spelling per value: 18.00 -> "18", 7E+4 -> "70000", -0 -> "0"."""
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def output_span(text: str) -> str:
    """The last ``<Output>`` span (up to ``</Output>`` or the end), else ``text``."""
    spans = _OUTPUT_RE.findall(text)
    return spans[-1] if spans else text


def _boxed_values(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}``, braces balanced (``\\boxed{\\frac{1}{2}}``)."""
    values, start = [], text.find(_BOXED)
    while start >= 0:
        depth, i = 1, start + len(_BOXED)
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            values.append(text[start + len(_BOXED): i - 1])
        start = text.find(_BOXED, i)
    return values


def last_number(text: str) -> Decimal | None:
    for match in reversed(list(_NUMBER_RE.finditer(text))):
        token = match.group()
        at = match.start()
        # "3-5" or "x-1": that hyphen is not a minus sign
        if token.startswith("-") and at > 0 and (text[at - 1].isalnum() or text[at - 1] in ")]"):
            token = token[1:]
        try:
            return Decimal(token.replace(",", ""))
        except InvalidOperation:  # pragma: no cover
            continue
    return None


def extract_answer(generation: str, reasoning: ReasoningFormat | None = None) -> str | None:
    """The model's numeric answer in canonical spelling, or None if it gave none.
    ``reasoning`` (the model's format) says where the answer is: the last
    ``<Output>`` span, the text after ``</think>`` or after the last ``Answer:``
    line; without one, Marco-o1's."""
    text = normalize_text(generation)
    if reasoning is None or reasoning.kind is Reasoning.MARCO:
        span = output_span(text)
    else:
        span = reasoning.answer_region(text)
    for boxed in reversed(_boxed_values(span)):
        number = last_number(boxed)
        if number is not None:
            return canonical(number)
    number = last_number(span)
    return canonical(number) if number is not None else None


def reference_answer(text: str) -> str | None:
    number = parse_number(text)
    return canonical(number) if number is not None else None


def is_correct(prediction: str | None, reference: str | None) -> bool:
    """Exact numeric match of canonical spellings (both come from ``canonical``)."""
    return prediction is not None and reference is not None and prediction == reference


__all__ = [
    "canonical",
    "extract_answer",
    "is_correct",
    "last_number",
    "output_span",
    "parse_number",
    "reference_answer",
]
