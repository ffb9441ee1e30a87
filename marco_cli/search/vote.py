"""Voting over finished rollouts: ``--pick vote`` and the early stop.

Each finished rollout's final answer gets a key: the number it gives, by
value (``formats.answers.extract_answer``, the rule ``marco eval`` scores by: a ``\\boxed{}`` value, else the
last number; "18", "$18.00" and "18." are one answer), or, when the answer
holds no number, its text normalised (Unicode NFKC, case-folded, whitespace
collapsed, surrounding quotes and final punctuation dropped). Rollouts
abstain when they looped (the loop guard) or wrote no answer (the path ran
out of tokens inside ``<Thought>``).

A group weighs the sum of its rollouts' values (paper eq. 2), so many
confident agreeing paths beat one lucky confident path, as in DeepConf's
confidence-weighted voting (arXiv 2508.15260). The vote answers with the
best rollout of the heaviest group.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ..backends.base import StopReason
from ..formats.answers import extract_answer
from ..formats.reasoning import MARCO, ReasoningFormat
from .result import Rollout

_SPACE_RE = re.compile(r"\s+")
_EDGE = " \t\n\"'`*_.,;:!?。，．！？“”‘’「」"


def normalise(text: str) -> str:
    """Case-, space- and punctuation-insensitive spelling of a text answer."""
    folded = _SPACE_RE.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return folded.strip(_EDGE)


def answer_key(text: str, stop: StopReason, reasoning: ReasoningFormat = MARCO) -> str | None:
    """The vote key of a finished path's text, or None when it abstains."""
    if stop is StopReason.LOOP:
        return None
    parsed = reasoning.parse(text)  # the answer by the model's format
    if parsed.has_tags and parsed.answer == parsed.thought:
        return None  # only a thought, no answer after it
    number = extract_answer(parsed.answer)
    if number is not None:
        return number  # a text key never collides: it has no digit at all
    return normalise(parsed.answer) or None


@dataclass(frozen=True)
class Group:
    key: str
    weight: float  # sum of the rollouts' values
    indices: tuple[int, ...]  # into the rollout list, in scoring order

    @property
    def count(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class Tally:
    """The vote over the finished rollouts so far."""

    groups: tuple[Group, ...]  # heaviest first
    voters: int  # rollouts with an answer
    mass: float  # total value of the voters

    @property
    def leader(self) -> Group | None:
        return self.groups[0] if self.groups else None

    @property
    def share(self) -> float:
        """The leader's share of the value mass (0 when nobody voted). When all
        voters are worth 0, each counts the same."""
        leader = self.leader
        if leader is None:
            return 0.0
        if self.mass > 0:
            return leader.weight / self.mass
        return leader.count / self.voters


def tally(rollouts: Sequence[Rollout]) -> Tally:
    """Group rollouts by ``answer_key``; ties go to more rollouts, then to the
    answer reached first (deterministic)."""
    members: dict[str, list[int]] = {}
    weights: dict[str, float] = {}
    for i, rollout in enumerate(rollouts):
        if rollout.answer_key is None:
            continue
        members.setdefault(rollout.answer_key, []).append(i)
        weights[rollout.answer_key] = weights.get(rollout.answer_key, 0.0) + rollout.value
    order = sorted(members, key=lambda k: (-weights[k], -len(members[k]), members[k][0]))
    groups = tuple(Group(k, weights[k], tuple(members[k])) for k in order)
    voters = sum(g.count for g in groups)
    return Tally(groups, voters, sum(g.weight for g in groups))


def agreed(t: Tally, share: float | None, minimum: int) -> bool:
    """Whether the early stop fires: ``minimum`` voters and the leader's share."""
    return share is not None and t.voters >= minimum and t.share >= share
