"""When a path reflects (Marco-o1 v1, arXiv 2411.14405 section 2.3; v2 idea).

- v1: the first time a path is about to close its thought, ``</Thought>``
  (``</think>``; the ``Answer:`` line of a model without a thought format) is
  replaced by "Wait! Maybe I made some mistakes! I need to rethink from
  scratch." and the model keeps thinking. At most one reflection per path.
- dynamic (ours, after v2 arXiv 2503.01461): a node whose step confidence is
  below ``reflect_below`` gets an extra child whose whole step is the phrase,
  so UCT can choose to rethink there instead of going on.

Neither applies once the thought is closed (rethinking inside the answer
makes no sense) or when the phrase would not fit under the answer cap.
"""

from __future__ import annotations

from ..core.settings import SearchSettings
from ..formats.reasoning import MARCO, ReasoningFormat
from .node import Node


def _can_reflect(node: Node, settings: SearchSettings, phrase_tokens: int, reasoning: ReasoningFormat) -> bool:
    text = "".join(n.text for n in node.path())
    return (
        not node.path_reflected()
        and settings.max_tokens - node.path_length > phrase_tokens
        and not any(end in text for end in reasoning.thought_ends)
    )


def owes_reflection(
    node: Node, settings: SearchSettings, phrase_tokens: int, reasoning: ReasoningFormat = MARCO
) -> bool:
    """v1: the next action from ``node`` turns the thought's end (``</Thought>``,
    ``</think>``, or for a model without a format its ``Answer:`` line) into
    the phrase."""
    return settings.reflection and _can_reflect(node, settings, phrase_tokens, reasoning)


def wants_rethink(
    node: Node, settings: SearchSettings, phrase_tokens: int, reasoning: ReasoningFormat = MARCO
) -> bool:
    """Dynamic: expanding ``node`` adds a reflection child (its step was unsure)."""
    threshold = settings.reflect_below
    confidence = node.step_confidence
    return (
        threshold is not None
        and confidence is not None
        and confidence < threshold
        and _can_reflect(node, settings, phrase_tokens, reasoning)
    )
