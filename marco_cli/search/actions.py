"""Turning MCTS actions into backend ``Request``s (docs/algorithm.md section 2).

- ``step``: until the step delimiter (a blank line by default; a delimiter
  right after ``<Thought>`` does not count), the thought's end, the answer's
  end or EOS.
- ``mini-step 64/32``: exactly that many tokens, ending early only at
  the answer's end or EOS (Marco-o1 v1, arXiv 2411.14405 section 2.2).
- rollout: continue to the answer's end/EOS or the per-answer token cap.

The ends come from the model's reasoning format: ``</Thought>`` and
``</Output>`` for Marco-o1; ``</think>`` and EOS (the answer has no closing
tag) for R1-style models; the ``Answer:`` line and EOS without a format.

Every sampling request carries ``loop_guard`` from the settings, so a step
or rollout that falls into repetition ends with ``StopReason.LOOP``.

While a path still owes its reflection (v1), the thought's end is a stop with
``keep=False``: the backend drops it so the search can put the reflection
phrase there instead and keep the model thinking.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.base import Backend, Handle, Request, Sampling, Stop, StopReason
from ..core.settings import REFLECTION_PHRASE, SearchSettings
from ..formats.reasoning import MARCO, ReasoningFormat

# The phrase goes where "</Thought>" was, as a paragraph of its own, and the
# next step starts on a fresh paragraph.
REFLECTION_TEXT = f"\n\n{REFLECTION_PHRASE}\n\n"


def reflection_tokens(backend: Backend) -> tuple[int, ...]:
    """Token ids of ``REFLECTION_TEXT``, tokenised once per search.

    Some tokenizers prepend a BOS token to every call; a leading token that
    decodes to nothing that starts the text is such a marker and is dropped.
    """
    tokens = list(backend.tokenize(REFLECTION_TEXT, special=False))
    while len(tokens) > 1:
        piece = backend.detokenize(tokens[:1])
        if piece and REFLECTION_TEXT.startswith(piece):
            break
        tokens.pop(0)
    return tuple(tokens)


@dataclass(frozen=True)
class Actions:
    settings: SearchSettings
    reflection: tuple[int, ...]  # reflection phrase token ids
    reasoning: ReasoningFormat = MARCO

    @property
    def _answer_end(self) -> tuple[Stop, ...]:
        close = self.reasoning.answer_close
        return (Stop(close, StopReason.OUTPUT_END),) if close else ()

    def _thought_end(self, *, reflect: bool) -> tuple[Stop, ...]:
        return tuple(Stop(end, StopReason.THOUGHT_END, keep=not reflect) for end in self.reasoning.thought_ends)

    def sampling(self, seed: int, *, greedy: bool = False) -> Sampling:
        s = self.settings
        if greedy:
            return Sampling(temperature=0.0, top_p=1.0, top_k=s.top_k, seed=0)
        return Sampling(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, seed=seed)

    def step(self, parent: Handle, remaining: int, seed: int, *, reflect: bool) -> Request:
        """One action from ``parent`` (``remaining``: tokens left under the answer cap)."""
        s = self.settings
        mini = s.action.mini_tokens
        if mini is not None:
            stops: tuple[Stop, ...] = self._answer_end
            limit = mini
        else:
            stops = (
                Stop(s.delimiter, StopReason.DELIMITER, needs_content=True),
                *self._thought_end(reflect=False),
                *self._answer_end,
            )
            limit = s.step_max_tokens
        if reflect:
            stops = tuple(st for st in stops if st.reason is not StopReason.THOUGHT_END) + self._thought_end(
                reflect=True
            )
        return Request(
            parent=parent,
            max_tokens=min(limit, remaining),
            stops=stops,
            sampling=self.sampling(seed),
            loop_guard=s.loop_guard,
        )

    def rollout(self, parent: Handle, remaining: int, seed: int, *, reflect: bool, greedy: bool = False) -> Request:
        """Continue to a terminal state. Not kept, unless the reflection may
        fire: then the state is needed to append the phrase (``after_reflection``)."""
        stops = self._answer_end + (self._thought_end(reflect=True) if reflect else ())
        return Request(
            parent=parent,
            max_tokens=remaining,
            stops=stops,
            sampling=self.sampling(seed, greedy=greedy),
            keep=reflect,
            loop_guard=self.settings.loop_guard,
        )

    def reflect(self, parent: Handle) -> Request:
        """Append the reflection phrase only (a node's step becomes step + phrase,
        or a dynamic-reflection child whose whole step is the phrase)."""
        return Request(parent=parent, max_tokens=0, forced=self.reflection)

    def after_reflection(self, parent: Handle, remaining: int, seed: int, *, greedy: bool = False) -> Request:
        """Rest of a rollout whose thought just got the reflection phrase."""
        return Request(
            parent=parent,
            max_tokens=max(0, remaining - len(self.reflection)),
            stops=self._answer_end,
            sampling=self.sampling(seed, greedy=greedy),
            forced=self.reflection,
            keep=False,
            loop_guard=self.settings.loop_guard,
        )
