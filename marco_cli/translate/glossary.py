"""User glossaries for ``marco translate --glossary FILE.toml``.

A glossary maps slang or jargon to the rendering the user wants::

    [terms]
    "踩屎感" = "comfortable, cushioned feel"
    "yyds" = "the greatest of all time"

Terms found in a line are handed to the model with the line (see
``translation.build_prompt``) and the translation is checked afterwards: a
rendering that does not appear in it (case-insensitively) is reported, since a
small model may simply ignore the hint. The file is read strictly, like
``models.toml``: unknown keys or non-string values are errors that name the
file and the key, so a typo cannot silently disable a term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError
from ..core.untrusted import load_config_toml, read_text

_TOP_KEYS = {"terms"}


@dataclass(frozen=True)
class Term:
    source: str  # as written in the glossary
    rendering: str
    pattern: re.Pattern[str]

    def used_in(self, translation: str) -> bool:
        return self.rendering.casefold() in translation.casefold()


@dataclass(frozen=True)
class Glossary:
    path: Path
    terms: tuple[Term, ...]  # longest source first, so overlaps resolve to the longer term

    def find(self, text: str) -> tuple[Term, ...]:
        """Terms occurring in ``text``, in the order of their first occurrence.

        A term that only occurs inside a longer matched term is left out
        ("踩屎" inside "踩屎感"): asking for both renderings would make the
        shorter one look ignored when the model rightly used the longer one.
        """
        taken: list[tuple[int, int]] = []
        found: list[tuple[int, Term]] = []
        for term in self.terms:
            spans = [m.span() for m in term.pattern.finditer(text)]
            free = [s for s in spans if not any(a <= s[0] and s[1] <= b for a, b in taken)]
            if free:
                found.append((free[0][0], term))
            taken.extend(spans)
        return tuple(term for _, term in sorted(found, key=lambda pair: pair[0]))


def _is_cjk(ch: str) -> bool:
    # Han, kana, hangul and their punctuation/compatibility blocks. These
    # scripts do not separate words with spaces, so a term is any substring.
    return ord(ch) >= 0x2E80


def term_pattern(term: str) -> re.Pattern[str]:
    """Latin-script edges match at word boundaries ("lit" must not match
    "little"), case-insensitively; CJK edges match anywhere."""
    body = re.escape(term)
    if term[0].isalnum() and not _is_cjk(term[0]):
        body = r"(?<!\w)" + body
    if term[-1].isalnum() and not _is_cjk(term[-1]):
        body = body + r"(?!\w)"
    return re.compile(body, re.IGNORECASE)


def parse_glossary(text: str, path: Path) -> Glossary:
    data = load_config_toml(text, path)
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{path}: top level: unknown key '{key}' (a glossary has only a [terms] table)")
    table = data.get("terms")
    if not isinstance(table, dict):
        what = "missing" if table is None else f"expected a table, got {type(table).__name__}"
        raise ConfigError(f'{path}: [terms]: {what} (write: [terms] then "slang" = "rendering" lines)')
    terms = []
    for source, rendering in table.items():
        where = f"{path}: [terms].{source!r}" if source.strip() else f"{path}: [terms]"
        if not source.strip():
            raise ConfigError(f"{where}: empty term")
        if not isinstance(rendering, str):
            raise ConfigError(f"{where}: expected a string, got {type(rendering).__name__} {rendering!r}")
        if not rendering.strip():
            raise ConfigError(f"{where}: empty rendering")
        source, rendering = source.strip(), rendering.strip()
        terms.append(Term(source, rendering, term_pattern(source)))
    if not terms:
        raise ConfigError(f"{path}: [terms]: no terms defined")
    terms.sort(key=lambda t: len(t.source), reverse=True)
    return Glossary(path, tuple(terms))


def load_glossary(path: str | Path) -> Glossary:
    path = Path(path).expanduser()
    return parse_glossary(read_text(path, "glossary", ConfigError), path)
