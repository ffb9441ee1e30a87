"""The settings a chat runs with, changeable by name (``/set KEY VALUE``).

A chat keeps both the CoT and the MCTS settings, so ``/mode`` can switch back
and forth without losing either. Keys shared by both modes (temperature,
max-tokens, seed, top-p) set both, as ``marco ask``'s flags do. Validation is
the settings dataclasses' own; this module only parses text and maps names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from ..core.errors import UsageError
from ..core.settings import Action, GenerationSettings, Mode, Pick, SearchSettings, ValueSpan

_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}
_UNSET = {"none", "off", "default"}


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("a whole number") from None


def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("a number") from None


def _bool(raw: str) -> bool:
    word = raw.lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    raise ValueError("on or off")


def _optional_float(raw: str) -> float | None:
    return None if raw.lower() in _UNSET else _float(raw)


def _text(raw: str) -> str | None:
    # "default" gives the model its own system prompt back
    return None if raw.lower() == "default" else raw


def _enum(kind: type[Enum]) -> Callable[[str], Enum]:
    def parse(raw: str) -> Enum:
        try:
            return kind(raw.lower())
        except ValueError:
            raise ValueError(" or ".join(m.value for m in kind)) from None

    return parse


@dataclass(frozen=True)
class Key:
    """One settable name: how to read its value and which fields it sets."""

    parse: Callable[[str], Any]
    help: str
    cot: str | None = None  # GenerationSettings field
    mcts: str | None = None  # SearchSettings field


KEYS: dict[str, Key] = {
    "temperature": Key(_float, "sampling temperature, 0 = greedy (both modes)", "temperature", "temperature"),
    "top-p": Key(_float, "nucleus sampling threshold (both modes)", "top_p", "top_p"),
    "max-tokens": Key(_int, "most tokens generated per answer (both modes)", "max_tokens", "max_tokens"),
    "seed": Key(_int, "random seed: same seed, same answer (both modes)", "seed", "seed"),
    "system": Key(_text, "system prompt; 'default' restores the model's own", "system"),
    "simulations": Key(_int, "MCTS iterations", mcts="simulations"),
    "action": Key(_enum(Action), "MCTS action: step, mini-64 or mini-32", mcts="action"),
    "children": Key(_int, "children sampled per expansion", mcts="children"),
    "max-depth": Key(_int, "deepest tree level expanded", mcts="max_depth"),
    "exploration": Key(_float, "UCT exploration constant", mcts="exploration"),
    "reflection": Key(_bool, "reflection phrase before </Thought>: on or off", mcts="reflection"),
    "reflect-below": Key(_optional_float, "reflect under steps less confident than this (or off)", mcts="reflect_below"),
    "pick": Key(_enum(Pick), "final answer: most-visited, best-value or vote", mcts="pick"),
    "early-stop": Key(_optional_float, "stop once one answer holds this share of the rollouts' value (or off)", mcts="early_stop"),
    "early-stop-min": Key(_int, "rollouts with an answer needed before an early stop", mcts="early_stop_min"),
    "loop-guard": Key(_bool, "end a generation that repeats itself: on or off (both modes)", "loop_guard", "loop_guard"),
    "value-span": Key(_enum(ValueSpan), "tokens a rollout's value averages over: rollout or output", mcts="value_span"),
    "budget": Key(_optional_float, "seconds per search (or off)", mcts="budget"),
    "top-k": Key(_int, "MCTS top-k sampling", mcts="top_k"),
    "step-max-tokens": Key(_int, "cap for one step action", mcts="step_max_tokens"),
}


def _show(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


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
        return self.generation.max_tokens if self.mode is Mode.COT else self.search.max_tokens

    def with_mode(self, mode: Mode | str) -> ChatSettings:
        if isinstance(mode, Mode):
            return replace(self, mode=mode)
        try:
            return replace(self, mode=Mode(mode.strip().lower()))
        except ValueError:
            raise UsageError(f"unknown mode '{mode}' (cot or mcts)") from None

    def with_text(self, key: str, raw: str) -> ChatSettings:
        """``/set KEY VALUE``: parse ``raw`` for ``key``, then validate."""
        spec = _key(key)
        raw = raw.strip()
        if not raw:
            raise UsageError(f"/set {key} needs a value ({spec.help})")
        try:
            value = spec.parse(raw)
        except ValueError as exc:
            raise UsageError(f"{key} must be {exc}, got '{raw}'") from None
        return self.with_value(key, value)

    def with_value(self, key: str, value: object) -> ChatSettings:
        spec = _key(key)
        try:
            generation = replace(self.generation, **{spec.cot: value}) if spec.cot else self.generation
            search = replace(self.search, **{spec.mcts: value}) if spec.mcts else self.search
        except UsageError as exc:
            # the dataclasses word their errors for flags ("--temperature must ..."); here it is a key
            raise UsageError(exc.message.removeprefix("--")) from None
        return replace(self, generation=generation, search=search)

    def shown(self, key: str) -> str:
        """A key's value as ``/show`` writes it (the current mode's, when both have it)."""
        spec = _key(key)
        if key.lower() == "system":
            return self.system or "the model's default"
        if spec.cot and (self.mode is Mode.COT or not spec.mcts):
            return _show(getattr(self.generation, spec.cot))
        return _show(getattr(self.search, spec.mcts))  # type: ignore[arg-type]

    def describe(self) -> list[tuple[str, str]]:
        """(key, value) pairs for ``/show``: the keys that matter in this mode."""
        rows = []
        for name, spec in KEYS.items():
            if name == "system":
                continue
            if self.mode is Mode.COT and spec.cot:
                rows.append((name, _show(getattr(self.generation, spec.cot))))
            elif self.mode is Mode.MCTS and spec.mcts:
                rows.append((name, _show(getattr(self.search, spec.mcts))))
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
            raise ValueError(f"settings: {exc.message.removeprefix('--')}") from None


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
        raise ValueError(f"{where}: {exc.message.removeprefix('--')}") from None


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
