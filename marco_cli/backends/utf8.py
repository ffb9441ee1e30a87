"""Cutting generated text only where a character ends.

Byte-level tokenizers split one character (CJK, emoji) over several tokens.
A generation that stops on a token cap can end half way through such a
character, and decoding it then yields U+FFFD. The text shown to the user is
taken from the longest token prefix whose bytes end a full UTF-8 sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"
MAX_SEQUENCE = 4  # a UTF-8 character is at most 4 bytes, so at most 3 tokens hold its unfinished start


def whole_character_prefix(tokens: Sequence[int], detokenize: Callable[[Sequence[int]], str]) -> int:
    """How many of ``tokens`` to keep so their text ends on a whole character.

    Works with any backend's ``detokenize``: a text that ends in U+FFFD
    while a prefix at most 3 tokens shorter does not was cut inside a
    character. (A U+FFFD a model writes itself at the very end of a capped
    generation goes too; it is not text anyone wants.)
    """
    n = len(tokens)
    if n == 0 or not detokenize(tokens).endswith(REPLACEMENT):
        return n
    for keep in range(n - 1, max(-1, n - MAX_SEQUENCE), -1):
        if not detokenize(tokens[:keep]).endswith(REPLACEMENT):
            return keep
    return n


def whole_character_text(tokens: Sequence[int], detokenize: Callable[[Sequence[int]], str]) -> str:
    return detokenize(tokens[: whole_character_prefix(tokens, detokenize)])
