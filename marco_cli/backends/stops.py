"""The text side of one continuation: UTF-8-safe decoding, stop strings, streaming.

Pure Python (no llama_cpp), so the rules of ``Stop`` are testable alone.
Tokens arrive as raw bytes; a character split across tokens (CJK, emoji) is
held back by an incremental decoder until it is complete.

Stop semantics (``marco_cli.backends.base.Stop``): a stop matches in the
decoded text of the continuation; the match must end in sampled text (a
forced phrase never stops itself); ``needs_content`` ignores a match with
only whitespace before it. ``keep=False`` cuts the continuation at the token
where the match begins, so streamed text is held back while its tail could
still become such a stop: the caller never streams text it later takes back.

With ``loop_guard`` the sampled text is also watched for degenerate
repetition (``loops.py``); a loop ends the continuation with
``StopReason.LOOP``, keeping every token (nothing streamed is taken back).
"""

from __future__ import annotations

import bisect
import codecs
from dataclasses import dataclass

from .base import Stop, StopReason
from .loops import loop_start

LOOP_STOP = Stop("", StopReason.LOOP)
"""The stop a loop reports: no text of its own, keeps what was generated."""


@dataclass(frozen=True)
class StopMatch:
    stop: Stop
    start: int  # character offset of the match in the continuation text
    cut: int  # tokens kept: all for keep=True, those before the match otherwise


class ContinuationText:
    """Decoded text of a growing token list, with stop matching and streaming."""

    def __init__(self, stops: tuple[Stop, ...], *, loop_guard: bool = False) -> None:
        self._stops = stops
        self._loop_guard = loop_guard
        self._takeback = tuple(s.text for s in stops if not s.keep)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self._char_end: list[int] = []  # text length after each token
        self._forced_chars = 0
        self._scanned = 0  # text before this offset was already searched
        self.emitted = 0  # text before this offset was streamed

    def add(self, piece: bytes, *, forced: bool = False) -> StopMatch | None:
        """Append one token's bytes; return the first stop it completes, if any."""
        self.text += self._decoder.decode(piece)
        self._char_end.append(len(self.text))
        if forced:
            self._forced_chars = len(self.text)
            return None
        match = self._find()
        self._scanned = len(self.text)
        if match is None and self._loop_guard and loop_start(self.text, self._forced_chars) is not None:
            match = StopMatch(LOOP_STOP, len(self.text), len(self._char_end))
        return match

    def _find(self) -> StopMatch | None:
        best: StopMatch | None = None
        for stop in self._stops:
            pos = max(0, self._scanned - len(stop.text) + 1)
            while (pos := self.text.find(stop.text, pos)) >= 0:
                end = pos + len(stop.text)
                if end > self._forced_chars and (not stop.needs_content or self.text[:pos].strip()):
                    if best is None or pos < best.start:
                        best = StopMatch(stop, pos, self._cut(stop, pos))
                    break
                pos += 1
        return best

    def _cut(self, stop: Stop, start: int) -> int:
        if stop.keep:
            return len(self._char_end)
        # The first token whose text reaches past ``start`` holds the stop's beginning.
        return bisect.bisect_right(self._char_end, start)

    def streamable(self) -> str:
        """Text that is safe to stream now (never taken back later); marks it emitted."""
        safe = len(self.text)
        for stop_text in self._takeback:
            for k in range(min(len(stop_text), len(self.text)), 0, -1):
                if self.text.endswith(stop_text[:k]):
                    safe = min(safe, len(self.text) - k)
                    break
        if safe < len(self.text):
            # Round down to a token boundary: a cut drops whole tokens.
            i = bisect.bisect_right(self._char_end, safe)
            safe = self._char_end[i - 1] if i else 0
        return self._emit(safe)

    def finish(self, final_text: str) -> str:
        """The rest of ``final_text`` (the continuation's text after any cut) to stream."""
        if not final_text.startswith(self.text[: self.emitted]):
            return ""  # cannot happen with a correct cut; never stream garbage
        piece = final_text[self.emitted :]
        self.emitted = len(final_text)
        return piece

    def _emit(self, end: int) -> str:
        if end <= self.emitted:
            return ""
        piece = self.text[self.emitted : end]
        self.emitted = end
        return piece
