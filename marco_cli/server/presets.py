"""Model ids that pick a method: ``NAME`` thinks once (chain of thought),
``NAME+mcts`` searches with the server's settings, ``NAME+mcts-quick`` and the
others search with a preset, ``NAME+vote`` votes over sampled chains. Clients that cannot send the ``marco`` body
(``llm``, most chat UIs) steer the search this way; ``marco`` options in a
body still override a preset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..core.settings import Action, Mode, SearchSettings


@dataclass(frozen=True)
class Preset:
    suffix: str  # after "+"; "" is the plain model id
    mode: Mode
    about: str
    changes: tuple[tuple[str, Any], ...] = ()
    caps: tuple[tuple[str, int], ...] = ()  # at most these, never more than the server's own search
    listed: bool = True  # shown in /v1/models (aliases are not)

    def search(self, base: SearchSettings) -> SearchSettings:
        changes = dict(self.changes)
        changes.update((name, min(cap, getattr(base, name))) for name, cap in self.caps)
        return replace(base, **changes) if changes else base


PRESETS: tuple[Preset, ...] = (
    Preset("", Mode.COT, "one chain of thought"),
    Preset("cot", Mode.COT, "one chain of thought", listed=False),
    Preset("mcts", Mode.MCTS, "tree search with the server's settings"),
    Preset(
        "mcts-quick",
        Mode.MCTS,
        "a short tree search: 4 simulations of 2 children",
        caps=(("simulations", 4), ("children", 2)),
    ),
    Preset("mcts-mini64", Mode.MCTS, "tree search over 64-token mini-steps", (("action", Action.MINI_64),)),
    Preset("mcts-mini32", Mode.MCTS, "tree search over 32-token mini-steps", (("action", Action.MINI_32),)),
    Preset("vote", Mode.VOTE, "sampled chains of thought, a vote weighted by their confidence"),
)


def model_id(name: str, preset: Preset) -> str:
    """The canonical id: ``cot`` is the plain name."""
    return name if preset.mode is Mode.COT else f"{name}+{preset.suffix}"


def find(model_id_: str, names: set[str]) -> tuple[str, Preset] | None:
    """(the name part as written, the preset) when ``model_id_`` is one of
    ``names`` with a known suffix (case does not matter)."""
    wanted = model_id_.strip().lower()
    if wanted in names:
        return wanted, PRESETS[0]
    base, _, suffix = wanted.rpartition("+")
    for preset in PRESETS:
        if preset.suffix and preset.suffix == suffix and base in names:
            return base, preset
    return None
