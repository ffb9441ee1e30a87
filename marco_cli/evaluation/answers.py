"""The numeric answer rules for math benchmarks live in ``formats/answers.py``,
below the search, which groups rollouts by them (``--pick vote``); evaluation
scores with the very same functions, re-exported here."""

from __future__ import annotations

from ..formats.answers import (
    canonical,
    extract_answer,
    is_correct,
    last_number,
    normalize_text,
    output_span,
    parse_number,
    reference_answer,
)

__all__ = [
    "canonical",
    "extract_answer",
    "is_correct",
    "last_number",
    "normalize_text",
    "output_span",
    "parse_number",
    "reference_answer",
]
