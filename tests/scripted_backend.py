"""A deterministic fake of the Backend protocol for search tests.

Tokens are small ints indexing ``PIECES``; text is the concatenation of the
pieces. The "model" writes ``<Thought>``, a blank line, words split into
paragraphs by blank lines, ``</Thought>``, ``<Output>``, words, ``</Output>``,
then EOS. Each token and its confidence come from a generator seeded by
(request seed, position, recent context), so the same request gives the same
continuation whatever else shares its batch; temperature 0 ignores the seed.
It honours Stop rules (keep, needs_content), max_tokens, forced tokens, keep,
the context size and the loop guard (the real rule, ``backends.loops``), and
counts calls and live handles.

Options make it misbehave or agree on purpose: ``loop_rate`` is the chance
that an answer falls into an endless, very confident "again so we" loop;
``answers`` makes every answer one word drawn from that list, so rollouts
agree (a word listed twice is twice as likely).

``style="think"`` makes it an R1-style model instead: ``<think>``, the same
paragraphs, ``</think>``, then a few answer words and EOS (no closing tag);
``opened=True`` when the chat template already opened the ``<think>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marco_cli.backends.base import (
    BackendStats,
    Continuation,
    Handle,
    ModelInfo,
    Request,
    StopReason,
    TokenCallback,
)
from marco_cli.backends.loops import loop_start

WORDS = ["so ", "we ", "add ", "two ", "and ", "three ", "then ", "check ", "it ", "five "]
SPECIAL = ["", "\n\n", "\n", "<Thought>", "</Thought>", "<Output>", "</Output>"]
CHARS = [chr(c) for c in range(32, 127)]
THINK_TAGS = ["<think>", "</think>"]  # after "again ", so the other pieces keep their ids
PIECES = SPECIAL + WORDS + CHARS + ["again "] + THINK_TAGS
EOS = 0
BLANK, NEWLINE, THOUGHT, THOUGHT_END, OUTPUT, OUTPUT_END = range(1, 7)
FIRST_WORD = len(SPECIAL)
AGAIN = len(SPECIAL + WORDS + CHARS)
THINK, THINK_END = len(PIECES) - 2, len(PIECES) - 1
LOOP = ["again ", "so ", "we ", "\n"]  # the unit the looping model repeats
LOOP_CONFIDENCE = 0.99  # loops are confident: that is why they must not win on value


class ScriptedBackend:
    def __init__(
        self,
        *,
        n_ctx: int = 100_000,
        thought_words: int = 6,
        ignore_seed: bool = False,
        interrupt_at_call: int | None = None,
        low_confidence: bool = False,
        loop_rate: float = 0.0,
        answers: Sequence[str] | None = None,
        style: str = "marco",
        opened: bool = False,
        chat_template: str | None = None,
    ) -> None:
        self.info = ModelInfo(
            name="scripted", path="-", n_ctx=n_ctx, n_vocab=len(PIECES), eos_tokens=(EOS,), chat_template=chat_template
        )
        self.style = style
        self.opened = opened
        self.stats = BackendStats()
        self.thought_words = thought_words
        self.ignore_seed = ignore_seed  # every sibling samples the same tokens
        self.interrupt_at_call = interrupt_at_call
        self.low_confidence = low_confidence  # confidences in [0.05, 0.3]
        self.loop_rate = loop_rate
        self.answers = [PIECES.index(w) for w in answers] if answers else None
        self.states: dict[Handle, tuple[int, tuple[int, ...]]] = {}  # handle -> (prompt length, tokens)
        self.next_handle = 1
        self.extend_calls: list[int] = []  # batch size of each extend call
        self.requests: list[Request] = []
        self.released: list[Handle] = []
        self.peak_live = 0

    # -- protocol --------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        tokens, i = [], 0
        by_length = sorted(range(1, len(PIECES)), key=lambda t: -len(PIECES[t]))
        while i < len(text):
            for t in by_length:
                if text.startswith(PIECES[t], i):
                    tokens.append(t)
                    i += len(PIECES[t])
                    break
            else:
                tokens.append(PIECES.index("?"))
                i += 1
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join(PIECES[t] for t in tokens)

    def root(self, prompt_tokens: Sequence[int]) -> Handle:
        self.stats.prompt_tokens += len(prompt_tokens)
        self.stats.evaluated_tokens += len(prompt_tokens)
        return self._new(len(prompt_tokens), tuple(prompt_tokens))

    def extend(self, requests: Sequence[Request], on_token: TokenCallback | None = None) -> list[Continuation]:
        self.extend_calls.append(len(requests))
        if self.interrupt_at_call is not None and len(self.extend_calls) == self.interrupt_at_call:
            raise KeyboardInterrupt
        self.requests.extend(requests)
        return [self._run(i, r, on_token) for i, r in enumerate(requests)]

    def release(self, handle: Handle) -> None:
        del self.states[handle]  # KeyError on a double or unknown release: a search bug
        self.released.append(handle)

    def close(self) -> None:
        self.states.clear()

    # -- helpers ---------------------------------------------------------------

    @property
    def live(self) -> int:
        return len(self.states)

    def _new(self, prompt_len: int, tokens: tuple[int, ...]) -> Handle:
        handle = self.next_handle
        self.next_handle += 1
        self.states[handle] = (prompt_len, tokens)
        self.peak_live = max(self.peak_live, len(self.states))
        self.stats.peak_live_sequences = self.peak_live
        return handle

    def _policy(self, generated: tuple[int, ...], rng: np.random.Generator) -> int:
        """The fake model's next token given what it wrote after the prompt."""
        if self.style == "think":
            return self._think_policy(generated, rng)
        text = self.detokenize(generated)
        u = rng.random()
        if "</Output>" in text:
            return EOS
        if "<Output>" in text:
            output = text[text.index("<Output>") + len("<Output>") :]
            if "again " in output:  # looping: the unit's next piece, forever
                return PIECES.index(LOOP[(LOOP.index(_last_piece(output)) + 1) % len(LOOP)])
            if not output and self.loop_rate and u < self.loop_rate:
                return AGAIN
            if self.answers is not None:
                return OUTPUT_END if output else self.answers[int(rng.integers(len(self.answers)))]
            return (
                OUTPUT_END if not text.endswith("<Output>") and u < 0.35 else FIRST_WORD + int(rng.integers(len(WORDS)))
            )
        if "</Thought>" in text:
            return NEWLINE if text.endswith("</Thought>") else OUTPUT
        if "<Thought>" not in text:
            return THOUGHT
        if text.endswith("<Thought>"):
            return NEWLINE
        if text.endswith("\n\n") and u < 0.2:
            return BLANK  # a blank line with no content before it: not a step end
        return self._thinking(text[text.index("<Thought>") :], THOUGHT_END, u, rng)

    def _think_policy(self, generated: tuple[int, ...], rng: np.random.Generator) -> int:
        text = ("<think>" if self.opened else "") + self.detokenize(generated)
        u = rng.random()
        if "</think>" in text:
            answer = text.split("</think>", 1)[1]
            if not answer.strip():
                return BLANK if not answer else FIRST_WORD + int(rng.integers(len(WORDS)))
            return (
                EOS
                if sum(answer.count(w) for w in WORDS) >= 2 and u < 0.4
                else FIRST_WORD + int(rng.integers(len(WORDS)))
            )
        if "<think>" not in text:
            return THINK
        if text.endswith("<think>"):
            return NEWLINE
        return self._thinking(text[text.index("<think>") :], THINK_END, u, rng)

    def _thinking(self, thought: str, end: int, u: float, rng: np.random.Generator) -> int:
        """Inside a thought (either style): its ``end`` once it has enough words,
        a blank line after a paragraph of two words or more, else a word."""
        words = sum(thought.count(w) for w in WORDS)
        paragraph = thought.rsplit("\n\n", 1)[-1]
        if words >= self.thought_words and u < 0.3:
            return end
        if sum(paragraph.count(w) for w in WORDS) >= 2 and u < 0.35:
            return BLANK
        return FIRST_WORD + int(rng.integers(len(WORDS)))

    def _rng(self, seed: int, context: tuple[int, ...]) -> np.random.Generator:
        tail = sum((i + 1) * t for i, t in enumerate(context[-8:]))
        return np.random.default_rng([seed, len(context), tail])

    def _run(self, index: int, request: Request, on_token: TokenCallback | None) -> Continuation:
        prompt_len, state = self.states[request.parent]  # KeyError: a released handle was used
        n_ctx = self.info.n_ctx
        tokens = list(request.forced[: max(0, n_ctx - len(state))])
        self.stats.evaluated_tokens += len(tokens)
        n_forced = len(tokens)
        stop = StopReason.CONTEXT if n_forced < len(request.forced) else StopReason.LENGTH
        confidences: list[float] = []
        seed = 0xC0FFEE if request.sampling.temperature == 0 or self.ignore_seed else request.sampling.seed
        while stop is StopReason.LENGTH and len(tokens) - n_forced < request.max_tokens:
            context = state + tuple(tokens)
            if len(context) >= n_ctx:
                stop = StopReason.CONTEXT
                break
            rng = self._rng(seed, context)
            token = self._policy(context[prompt_len:], rng)
            confidence = float(rng.uniform(0.05, 0.3) if self.low_confidence else rng.uniform(0.05, 1.0))
            if "again " in self.detokenize((*context[prompt_len:], token)):
                confidence = LOOP_CONFIDENCE
            if token == EOS:
                stop = StopReason.EOS
                break
            tokens.append(token)
            confidences.append(confidence)
            self.stats.generated_tokens += 1
            self.stats.evaluated_tokens += 1
            if on_token is not None:
                on_token(index, PIECES[token])
            hit = self._stop_hit(tokens[n_forced:], request)
            if hit is not None:
                stop, cut = hit
                del tokens[n_forced + cut :]
                del confidences[cut:]
                break
            if request.loop_guard and loop_start(self.detokenize(tokens[n_forced:])) is not None:
                stop = StopReason.LOOP
                break
        handle = self._new(prompt_len, state + tuple(tokens)) if request.keep else None
        return Continuation(handle, tuple(tokens), self.detokenize(tokens), tuple(confidences), stop, n_forced)

    def _stop_hit(self, sampled: list[int], request: Request) -> tuple[StopReason, int] | None:
        """(reason, tokens to keep) for the first stop the sampled text now contains."""
        text = self.detokenize(sampled)
        for stop in request.stops:
            at = text.find(stop.text)
            while at >= 0 and stop.needs_content and not text[:at].strip():
                at = text.find(stop.text, at + 1)
            if at < 0:
                continue
            if stop.keep:
                return stop.reason, len(sampled)
            # Drop from the token where the stop text begins.
            length = 0
            for i, t in enumerate(sampled):
                if length + len(PIECES[t]) > at:
                    return stop.reason, i
                length += len(PIECES[t])
        return None


def _last_piece(text: str) -> str:
    """The loop unit's piece that ``text`` ends with."""
    return next(p for p in LOOP if text.endswith(p))
