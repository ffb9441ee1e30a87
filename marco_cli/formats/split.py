"""Split streamed model text into the thought and the answer, as it arrives.

The same rules as ``ReasoningFormat.parse``, but pure and incremental:
``feed`` returns ``(channel, text)`` pairs, ``"reasoning"`` for the thought
(inside ``<Thought>`` or ``<think>``) and ``"content"`` for the answer (inside
``<Output>``, after ``</think>``, or all of it when the model uses no tags). A
tag split across pieces is held back until it is complete; whitespace at
either end of a channel is dropped, so the joined deltas read like the parsed
thought and answer.

A model without a thought format (``none``) only shows where its answer
starts at the end (the last ``Answer:`` line), so its text streams as
``"draft"`` (the terminal shows it dimmed on stderr; a server need not send
it) and the answer comes whole from ``close``.

Text that starts without a tag is the answer by default. With
``thought_first`` it is the thought (the model skipped ``<Thought>``, as small
models do although marco asks every model to think first) until ``<Output>``
or ``</Thought>`` says otherwise, so no tag leaks into the answer; when neither
comes, the thought is all there is and is also the answer. ``split`` runs the
same splitter over a whole text: a streamed answer, joined, is the
non-streamed one (``marco serve`` relies on it).
"""

from __future__ import annotations

from enum import Enum

from .reasoning import MARCO, ReasoningFormat

REASONING = "reasoning"
CONTENT = "content"
DRAFT = "draft"


class _State(Enum):
    UNKNOWN = 0  # not enough text yet to know whether the model uses tags
    THOUGHT = 1
    AFTER_THOUGHT = 2  # after </Thought>: the answer if no <Output> ever comes
    ANSWER = 3
    UNTAGGED = 4
    DONE = 5  # after </Output>: nothing more is shown


def splitter_for(reasoning: ReasoningFormat, *, thought_first: bool = False) -> ThoughtSplitter | MarkerSplitter:
    if reasoning.has_thought:
        return ThoughtSplitter(reasoning, thought_first=thought_first)
    return MarkerSplitter(reasoning)


class MarkerSplitter:
    """``none`` format: everything is a draft until ``close`` finds the answer."""

    def __init__(self, reasoning: ReasoningFormat) -> None:
        self.reasoning = reasoning
        self._text = ""
        self._closed = False
        self.sent = {REASONING: "", CONTENT: "", DRAFT: ""}

    def feed(self, piece: str) -> list[tuple[str, str]]:
        self._text += piece
        if not piece:
            return []
        self.sent[DRAFT] += piece
        return [(DRAFT, piece)]

    def close(self) -> list[tuple[str, str]]:
        if self._closed:
            return []
        self._closed = True
        answer = self.reasoning.parse(self._text).answer
        if not answer:
            return []
        self.sent[CONTENT] += answer
        return [(CONTENT, answer)]


class ThoughtSplitter:
    def __init__(self, reasoning: ReasoningFormat = MARCO, *, thought_first: bool = False) -> None:
        assert reasoning.thought_open and reasoning.thought_close, "a format with a thought"
        self._open, self._close = reasoning.thought_open, reasoning.thought_close
        self._answer_open, self._answer_close = reasoning.answer_open, reasoning.answer_close
        self._untagged = _State.THOUGHT if thought_first else _State.UNTAGGED
        self._state = _State.UNKNOWN
        self._buf = ""
        self._pending = {REASONING: "", CONTENT: ""}  # trailing whitespace held back
        self._started = {REASONING: False, CONTENT: False}
        self.sent = {REASONING: "", CONTENT: "", DRAFT: ""}  # everything emitted, per channel

    def feed(self, piece: str) -> list[tuple[str, str]]:
        self._buf += piece
        out: list[tuple[str, str]] = []
        while self._step(out):
            pass
        return out

    def close(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        state = self._state
        if state is _State.UNKNOWN:  # only whitespace or an unfinished tag: plain text
            self._state = _State.UNTAGGED
        if state is _State.AFTER_THOUGHT and not self._buf.strip():
            self._state = _State.THOUGHT  # nothing after </Thought>: the thought is the answer
        if self._state is not _State.DONE:
            self._emit(out, self._buf)
        self._buf = ""
        if self._state is _State.THOUGHT and not self.sent[CONTENT] and self.sent[REASONING]:
            self._state = _State.DONE
            self.sent[CONTENT] = self.sent[REASONING]
            out.append((CONTENT, self.sent[REASONING]))
        return out

    def _channel(self) -> str:
        return REASONING if self._state is _State.THOUGHT else CONTENT

    def _step(self, out: list[tuple[str, str]]) -> bool:
        """Consume what can be consumed safely; True when the state changed."""
        state = self._state
        if state is _State.UNKNOWN:
            head = self._buf.lstrip()
            starts = [(self._open, _State.THOUGHT)]
            if self._answer_open:
                starts.append((self._answer_open, _State.ANSWER))
            for tag, new in starts:
                if head.startswith(tag):
                    self._buf, self._state = head[len(tag):], new
                    return True
            if head and not any(tag.startswith(head) for tag, _ in starts):
                self._state = self._untagged
                return True
            return False
        if state is _State.THOUGHT:
            ends = (self._close, self._answer_open) if self._answer_open else (self._close,)
            found = [(at, tag) for tag in ends if (at := self._buf.find(tag)) >= 0]
            if found:
                at, tag = min(found)
                self._emit(out, self._buf[:at])
                self._buf = self._buf[at + len(tag):]
                if tag == self._close and self._answer_open:
                    self._state = _State.AFTER_THOUGHT
                else:
                    self._state = _State.ANSWER
                return True
            self._emit_safe(out, ends)
            return False
        if state is _State.AFTER_THOUGHT:  # hold it: <Output> may still come
            assert self._answer_open is not None
            at = self._buf.find(self._answer_open)
            if at < 0:
                return False
            self._emit(out, self._buf[:at], REASONING)  # text between </Thought> and <Output> is thought too
            self._buf, self._state = self._buf[at + len(self._answer_open):], _State.ANSWER
            return True
        if state is _State.ANSWER:
            if self._answer_close is None:  # <think> formats: the answer runs to the end
                self._emit(out, self._buf)
                self._buf = ""
                return False
            at = self._buf.find(self._answer_close)
            if at >= 0:
                self._emit(out, self._buf[:at])
                self._buf, self._state = "", _State.DONE
                return True
            self._emit_safe(out, (self._answer_close,))
            return False
        if state is _State.UNTAGGED:
            self._emit(out, self._buf)
        self._buf = ""
        return False

    def _emit_safe(self, out: list[tuple[str, str]], tags: tuple[str, ...]) -> None:
        """Emit all but an ending that could be the start of one of ``tags``."""
        keep = partial_tag_suffix(self._buf, tags)
        self._emit(out, self._buf[: len(self._buf) - keep])
        self._buf = self._buf[len(self._buf) - keep:]

    def _emit(self, out: list[tuple[str, str]], text: str, channel: str | None = None) -> None:
        channel = channel or self._channel()
        if not self._started[channel]:
            text = text.lstrip()
        if not text:
            return
        body = text.rstrip()
        if not body:
            self._pending[channel] += text
            return
        piece = self._pending[channel] + body
        self._pending[channel] = text[len(body):]
        self._started[channel] = True
        self.sent[channel] += piece
        out.append((channel, piece))


def split(text: str, *, reasoning: ReasoningFormat = MARCO, thought_first: bool = False) -> tuple[str, str]:
    """(thought, answer) of a whole generation, by the streaming rules. For a
    model without a thought format the whole text is the draft it reasoned in
    (streamed as such) and the answer is what its marker rule extracts."""
    splitter = splitter_for(reasoning, thought_first=thought_first)
    splitter.feed(text)
    splitter.close()
    return splitter.sent[REASONING] + splitter.sent[DRAFT], splitter.sent[CONTENT]


def partial_tag_suffix(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that could begin one of ``tags``."""
    best = 0
    for tag in tags:
        for n in range(min(len(tag) - 1, len(text)), 0, -1):
            if tag.startswith(text[-n:]):
                best = max(best, n)
                break
    return best
