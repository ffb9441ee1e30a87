"""The settings a chat runs with, changeable by name (``/set KEY VALUE``).

A chat keeps both the CoT and the MCTS settings, so ``/mode`` can switch back
and forth without losing either. ``--mode vote`` samples with the search's
settings (the ones a chain of thought has, plus ``samples``). Keys shared by both modes (temperature,
max-tokens, seed, top-p) set both, as ``marco ask``'s flags do. The keys, how
their text is read and checked, and their help all come from the settings
spec (``core/spec.py``); this module maps them onto the two modes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from ..core.errors import UsageError
from ..core.settings import SPEC, GenerationSettings, Mode, SearchSettings
from ..core.spec import Setting, Surface


@dataclass(frozen=True)
class Key:
    """One settable name: its setting in the spec, and the fields it sets."""

    setting: Setting
    help: str
    cot: str | None = None  # GenerationSettings field
    mcts: str | None = None  # SearchSettings field


def _keys() -> dict[str, Key]:
    """Every setting the spec gives chat, by name, in the spec's order."""
    keys = {}
    for s in SPEC.on(Surface.CHAT):
        cot, mcts = SPEC.field_in(s.name, GenerationSettings), SPEC.field_in(s.name, SearchSettings)
        text = s.help.rstrip(".")
        if text[1:2].islower():  # "Sampling temperature" -> "sampling ...", but "MCTS ..." stays
            text = text[:1].lower() + text[1:]
        if s.choices:
            text += f" ({', '.join(s.choices[:-1])} or {s.choices[-1]})"
        elif s.kind is bool:
            text += " (on or off)"
        elif s.optional and s.name != "system":
            text += " (or off)"
        help = text + (" (both modes)" if cot and mcts else "")
        keys[s.name] = Key(s, help, cot, mcts)
    return keys


KEYS: dict[str, Key] = _keys()

# What --mode vote reads of the search's settings (reasoner._ask_vote); the
# tree's own keys mean nothing there, and ``samples`` nothing to the tree.
VOTE_KEYS = frozenset({"temperature", "top-p", "top-k", "max-tokens", "seed", "loop-guard", "value-span", "samples"})


@dataclass(frozen=True)
class ChatSettings:
    mode: Mode = Mode.COT
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    search: SearchSettings = field(default_factory=SearchSettings)

    @property
    def system(self) -> str | None:
        return self.generation.system

    @property
    def max_tokens(self) -> int:
        """Tokens the current mode may generate per answer (room kept in the context)."""
        return self.generation.max_tokens if self.mode is Mode.COT else self.search.max_tokens  # vote: per chain

    def with_mode(self, mode: Mode | str) -> ChatSettings:
        if isinstance(mode, Mode):
            return replace(self, mode=mode)
        try:
            return replace(self, mode=Mode(mode.strip().lower()))
        except ValueError:
            raise UsageError(f"unknown mode '{mode}' (cot, mcts or vote)") from None

    def with_text(self, key: str, raw: str) -> ChatSettings:
        """``/set KEY VALUE``: parse ``raw`` for ``key``, then validate."""
        spec = _key(key)
        raw = raw.strip()
        if not raw:
            raise UsageError(f"/set {key} needs a value ({spec.help})")
        return self.with_value(key, spec.setting.parse(raw))

    def with_value(self, key: str, value: object) -> ChatSettings:
        spec = _key(key)
        # the key is only known at run time; __post_init__ checks the value
        cot: dict[str, Any] = {spec.cot: value} if spec.cot else {}
        mcts: dict[str, Any] = {spec.mcts: value} if spec.mcts else {}
        generation = replace(self.generation, **cot) if spec.cot else self.generation
        search = replace(self.search, **mcts) if spec.mcts else self.search
        return replace(self, generation=generation, search=search)

    def shown(self, key: str) -> str:
        """A key's value as ``/show`` writes it (the current mode's, when both have it)."""
        spec = _key(key)
        if key.lower() == "system":
            return self.system or "the model's default"
        if spec.cot and (self.mode is Mode.COT or not spec.mcts):
            return spec.setting.show(getattr(self.generation, spec.cot))
        return spec.setting.show(getattr(self.search, spec.mcts))  # type: ignore[arg-type]

    def used(self, key: str) -> bool:
        """Whether ``key`` matters to the current mode's answers."""
        spec = _key(key)
        name = spec.setting.name
        if self.mode is Mode.COT:
            return spec.cot is not None
        if self.mode is Mode.VOTE:
            return name in VOTE_KEYS
        return spec.mcts is not None and name != "samples"

    def describe(self) -> list[tuple[str, str]]:
        """(key, value) pairs for ``/show``: the keys that matter in this mode."""
        rows = []
        for name, spec in KEYS.items():
            if name == "system" or not self.used(name):
                continue
            if self.mode is Mode.COT:
                rows.append((name, spec.setting.show(getattr(self.generation, spec.cot))))  # type: ignore[arg-type]
            else:
                rows.append((name, spec.setting.show(getattr(self.search, spec.mcts))))  # type: ignore[arg-type]
        return rows

    # -- the conversation file -------------------------------------------
    def to_json(self) -> dict[str, Any]:
        def plain(obj: object, skip: set[str]) -> dict[str, Any]:
            out = {}
            for f in fields(obj):  # type: ignore[arg-type]
                if f.name not in skip:
                    value = getattr(obj, f.name)
                    out[f.name] = value.value if isinstance(value, Enum) else value
            return out

        return {"cot": plain(self.generation, {"system"}), "mcts": plain(self.search, set())}

    @classmethod
    def from_json(cls, data: object, *, mode: Mode, system: str | None) -> ChatSettings:
        """Inverse of ``to_json``; raises ``ValueError`` naming the bad key."""
        if not isinstance(data, dict):
            raise ValueError("'settings' must be an object")
        unknown = set(data) - {"cot", "mcts"}
        if unknown:
            raise ValueError(f"settings: unknown key '{sorted(unknown)[0]}'")
        generation = _dataclass_from_json(GenerationSettings, data.get("cot", {}), "settings.cot", {"system"})
        search = _dataclass_from_json(SearchSettings, data.get("mcts", {}), "settings.mcts", set())
        try:
            return cls(mode, replace(generation, system=system), search)
        except UsageError as exc:
            raise ValueError(f"settings: {exc.message}") from None


def _key(name: str) -> Key:
    spec = KEYS.get(name.lower())
    if spec is None:
        raise UsageError(f"unknown setting '{name}' (settings: {', '.join(KEYS)})")
    return spec


def _dataclass_from_json(cls: type, data: object, where: str, skip: set[str]) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"'{where}' must be an object")
    defaults = cls()
    known = {f.name for f in fields(cls)} - skip
    values = {}
    for name, value in data.items():
        if name not in known:
            raise ValueError(f"{where}: unknown key '{name}'")
        values[name] = _typed(getattr(defaults, name), value, f"{where}.{name}")
    try:
        return replace(defaults, **values)
    except UsageError as exc:
        raise ValueError(f"{where}: {exc.message}") from None


def _typed(default: object, value: object, where: str) -> object:
    """Check a JSON value against the type of the field's default."""
    if isinstance(default, Enum):
        try:
            return type(default)(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in type(default))
            raise ValueError(f"{where}: expected one of {choices}, got {value!r}") from None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float) or default is None:  # None: optional numbers (budget, reflect_below)
        ok = number or (default is None and value is None)
        value = float(value) if number else value  # type: ignore[arg-type]
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(f"{where}: unexpected value {value!r}")
    return value
