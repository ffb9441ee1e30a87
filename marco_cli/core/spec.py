"""The settings spec: what a setting is, how its value is read and checked.

Every user-facing setting is declared once, as a field of one of the settings
dataclasses in ``settings.py`` (``simulations: int = setting(...)``): its name,
type, default, help, group, the surfaces that expose it, and the rules its
value must meet. Everything else is derived from that declaration: each
command's flags (``commands/_options.py``), chat's ``/set`` keys
(``chat/settings.py``), the fields of a ``marco serve`` request's ``marco``
object (``server/schema.py``) and the option table in the README.

A bad value raises ``SettingError``, which names the setting but not the way
it was given; each surface words it in its own style (``--simulations must be
> 0, got 0`` on the command line, ``simulations must be ...`` after ``/set``,
``marco.simulations must be ...`` in a 400 JSON error).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import Field, dataclass, field, fields, replace
from enum import Enum
from typing import Any, TypeVar

from .errors import UsageError

T = TypeVar("T")
Rule = Callable[[Any], "str | None"]  # the problem with a value, or None when it is fine


class Group(str, Enum):
    """Where a setting is listed (help panels, the README table)."""

    MODEL = "Model"
    GENERATION = "Generation"
    SEARCH = "MCTS search"
    VOTE = "Voting (--mode vote)"
    RUNTIME = "Model runtime"


class Surface(str, Enum):
    CLI = "cli"  # a flag of every command that runs the model
    CHAT = "chat"  # a `/set` key in `marco chat`
    REQUEST = "request"  # a field of the "marco" object of a `marco serve` request


ALL_SURFACES = frozenset(Surface)
CLI_ONLY = frozenset({Surface.CLI})

_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}
_UNSET = {"none", "off", "default"}


class SettingError(UsageError):
    """A setting's value is wrong. ``problem`` says how ("must be > 0");
    ``worded(name)`` puts the name a surface uses in front of it."""

    def __init__(self, name: str, problem: str, got: str | None = None) -> None:
        self.name, self.problem, self.got = name, problem, got
        super().__init__(self.worded(name))

    def worded(self, name: str) -> str:
        return f"{name} {self.problem}" + (f", got {self.got}" if self.got is not None else "")


# -- rules -------------------------------------------------------------------


def above(low: float) -> Rule:
    return lambda v: None if v > low else f"must be > {low:g}"


def at_least(low: float, words: str | None = None) -> Rule:
    return lambda v: None if v >= low else (words or f"must be >= {low:g}")


def at_most(high: float, words: str) -> Rule:
    return lambda v: None if v <= high else words


def in_unit_interval(v: float) -> str | None:
    return None if 0 < v <= 1 else "must be in (0, 1]"


def not_empty(v: Any) -> str | None:
    return None if v else "must not be empty"


# -- text <-> value ----------------------------------------------------------


def _parse_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("must be a whole number") from None


def _parse_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("must be a number") from None


def _parse_bool(raw: str) -> bool:
    word = raw.lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    raise ValueError("must be on or off")


def escaped_text(raw: str) -> str:
    r"""``\n``, ``\t`` and ``\\`` typed as two characters become the character
    (a step delimiter is usually a blank line, hard to type on a command line)."""
    out, i = [], 0
    while i < len(raw):
        pair = raw[i : i + 2]
        if pair in ("\\n", "\\t", "\\\\"):
            out.append({"\\n": "\n", "\\t": "\t", "\\\\": "\\"}[pair])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def show_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


@dataclass(frozen=True)
class Setting:
    """One user-facing setting. ``name`` is its one spelling: the flag is
    ``--name``, the ``/set`` key ``name``, the request field ``name`` with
    underscores."""

    name: str
    kind: type  # int, float, bool, str or an Enum
    default: Any
    help: str
    group: Group
    surfaces: frozenset[Surface] = ALL_SURFACES
    optional: bool = False  # None is a value ("off" in chat, null in JSON)
    rules: tuple[Rule, ...] = ()
    parser: Callable[[str], Any] | None = None  # text -> value; the kind's own when None
    shower: Callable[[Any], str] | None = None  # value -> text; the kind's own when None
    metavar: str | None = None
    short: str | None = None  # e.g. "-t"
    envvar: str | None = None  # read when the flag is not given
    default_text: str | None = None  # help's [default: ...] when the default is no constant
    openai: str | None = None  # the OpenAI request field a server reads it from, if any
    negatable: bool = True  # a bool flag comes with --no-NAME

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def key(self) -> str:
        """The request field, and the name of the command function's parameter."""
        return self.name.replace("-", "_")

    @property
    def shown_metavar(self) -> str:
        """How help writes the value: the declared metavar, an enum's choices
        (``step|mini-64|mini-32``: a new member shows up by itself), or NAME."""
        if self.metavar:
            return self.metavar
        return "|".join(self.choices) if self.choices else self.name.upper()

    @property
    def choices(self) -> list[str] | None:
        return [str(m.value) for m in self.kind] if issubclass(self.kind, Enum) else None

    def parse(self, raw: str) -> Any:
        """Text (a flag's value, ``/set``'s argument) -> a checked value."""
        text = raw.strip()
        if self.optional and text.lower() in _UNSET:
            return None
        try:
            if self.parser is not None:
                value = self.parser(text)
            elif issubclass(self.kind, Enum):
                value = self._enum(text)
            elif self.kind is bool:
                value = _parse_bool(text)
            elif self.kind is int:
                value = _parse_int(text)
            elif self.kind is float:
                value = _parse_float(text)
            else:
                value = raw
        except ValueError as exc:
            raise SettingError(self.name, str(exc), repr(raw)) from None
        return self.check(value)

    def _enum(self, text: str) -> Enum:
        try:
            return self.kind(text.lower())  # type: ignore[no-any-return]
        except ValueError:
            raise ValueError("must be " + _one_of(self.choices or [])) from None

    def check(self, value: Any) -> Any:
        """The value, checked against the kind and the rules (ints become
        floats where a float is wanted). Every float must be finite: NaN
        and infinity are refused here, once, for every surface."""
        if value is None:
            if self.optional:
                return None
            raise SettingError(self.name, "needs a value")
        if issubclass(self.kind, Enum):
            if not isinstance(value, self.kind):
                try:
                    value = self.kind(value)
                except ValueError:
                    raise SettingError(self.name, "must be " + _one_of(self.choices or []), repr(value)) from None
        elif self.kind is bool:
            if not isinstance(value, bool):
                raise SettingError(self.name, "must be on or off", repr(value))
        elif self.kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingError(self.name, "must be a number", repr(value))
            if self.kind is int and not isinstance(value, int):
                raise SettingError(self.name, "must be a whole number", repr(value))
            if self.kind is float:
                value = float(value)
                if not math.isfinite(value):
                    raise SettingError(self.name, "must be a finite number", repr(value))
        elif not isinstance(value, self.kind):
            raise SettingError(self.name, f"must be {self.kind.__name__}", repr(value))
        for rule in self.rules:
            problem = rule(value)
            if problem:
                raise SettingError(self.name, problem, repr(value) if isinstance(value, str) else str(value))
        return value

    def show(self, value: Any) -> str:
        """A value as ``/show``, help and the README write it."""
        if self.shower is not None and value is not None:
            return self.shower(value)
        if isinstance(value, Enum):
            return str(value.value)
        if isinstance(value, bool):
            return "on" if value else "off"
        if value is None:
            return "off"
        return f"{value:g}" if isinstance(value, float) else str(value)

    @property
    def default_shown(self) -> str:
        return self.default_text or self.show(self.default)


# -- declaring settings as dataclass fields ----------------------------------

_META = "marco_setting"


def _one_of(choices: list[str]) -> str:
    """'a or b', 'a, b or c'."""
    return " or ".join(choices) if len(choices) < 3 else ", ".join(choices[:-1]) + " or " + choices[-1]


def setting(name: str, default: Any, help: str, group: Group, *, kind: type | None = None, **more: Any) -> Any:
    """A dataclass field that is a user-facing setting (see the module doc)."""
    if kind is None:
        if default is None:
            raise TypeError(f"setting {name!r}: a None default needs kind=")  # a spec bug
        kind = type(default)
    return declared(Setting(name, kind, default, help, group, **more), default)


def declared(spec: Setting, default: Any) -> Any:
    """A field for ``spec`` with this class's own default; how two classes
    share one setting (CoT and MCTS both have a temperature)."""
    return field(default=default, metadata={_META: spec})


def spec_of(f: Field[Any]) -> Setting | None:
    return f.metadata.get(_META)


def check_fields(obj: Any) -> None:
    """``__post_init__`` of a settings dataclass: check every declared field."""
    for f in fields(obj):
        spec = spec_of(f)
        if spec is None:
            continue
        value = getattr(obj, f.name)
        checked = spec.check(value)
        if checked is not value:
            object.__setattr__(obj, f.name, checked)


class Spec:
    """The ordered set of settings, and where each lives in the dataclasses."""

    def __init__(self, standalone: Iterable[Setting], classes: Iterable[type]) -> None:
        self.classes = tuple(classes)
        found: dict[str, Setting] = {s.name: s for s in standalone}
        self._fields: dict[str, list[tuple[type, str]]] = {}
        for cls in self.classes:
            for f in fields(cls):
                spec = spec_of(f)
                if spec is None:
                    continue
                if found.setdefault(spec.name, spec) is not spec:
                    raise AssertionError(f"two settings are named {spec.name!r}")  # a spec bug
                self._fields.setdefault(spec.name, []).append((cls, f.name))
        order = list(Group)
        self.settings = sorted(found.values(), key=lambda s: order.index(s.group))  # stable within a group

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.settings)

    def __getitem__(self, name: str) -> Setting:
        for s in self.settings:
            if s.name == name:
                return s
        raise KeyError(name)

    def on(self, surface: Surface) -> list[Setting]:
        return [s for s in self.settings if surface in s.surfaces]

    def fields_of(self, name: str) -> list[tuple[type, str]]:
        """(dataclass, field) pairs a setting sets; empty for standalone ones."""
        return self._fields.get(name, [])

    def field_in(self, name: str, cls: type) -> str | None:
        return next((f for c, f in self.fields_of(name) if c is cls), None)

    def apply(self, obj: T, values: dict[str, Any]) -> T:
        """``obj`` with the settings in ``values`` (by setting name) that it
        holds replaced; settings it does not hold are ignored."""
        changes = {}
        for name, value in values.items():
            field_name = self.field_in(name, type(obj))
            if field_name is not None:
                changes[field_name] = value
        return replace(obj, **changes) if changes else obj  # type: ignore[type-var]

    def build(self, cls: type[T], values: dict[str, Any]) -> T:
        return self.apply(cls(), values)
