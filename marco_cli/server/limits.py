"""How much one request may ask of ``marco serve``.

Every size a client controls has a ceiling here, so no single request can hold
the model for ever or fill the memory: the body, the number of messages, the
tokens to generate, the search's simulations, children and depth, and the wall
clock. The operator raises a ceiling with ``--limit NAME=N``; the server's own
defaults (its flags) never count as over a ceiling, they raise it if needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from ..core.errors import UsageError

MAX_DELIMITER_CHARS = 64  # a step delimiter is a few characters; stop matching scans it per token


@dataclass(frozen=True)
class ServerLimits:
    body_bytes: int = 2 * 2**20  # a context of 32k tokens is ~130 KB of text
    messages: int = 256
    max_tokens: int = 8192
    simulations: int = 256
    children: int = 8
    max_depth: int = 32
    seconds: float = 600.0  # wall clock of one request once it runs (queueing not counted)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UsageError(f"--limit {_flag(f.name)} must be a number > 0, got {value}")

    @classmethod
    def parse(cls, specs: list[str]) -> ServerLimits:
        """``["simulations=1000", "seconds=3600"]`` -> limits (one-line errors)."""
        changes: dict[str, Any] = {}
        names = {_flag(f.name): f for f in fields(cls)}
        for spec in specs:
            key, sep, raw = spec.partition("=")
            key = key.strip().lower().replace("_", "-")
            if not sep or key not in names:
                raise UsageError(f"--limit takes NAME=N with NAME one of {', '.join(names)}; got {spec!r}")
            f = names[key]
            try:
                value = float(raw) if f.type in (float, "float") else int(raw)
            except ValueError:
                raise UsageError(
                    f"--limit {key} must be a {'number' if f.type in (float, 'float') else 'whole number'}, got {raw!r}"
                ) from None
            changes[f.name] = value
        return cls(**changes)

    def covering(self, **defaults: float | int | None) -> ServerLimits:
        """These limits, raised where the server's own defaults are higher."""
        raised: dict[str, Any] = {k: v for k, v in defaults.items() if v is not None and v > getattr(self, k)}
        return replace(self, **raised) if raised else self


def _flag(name: str) -> str:
    return name.replace("_", "-")


def over_limit(param: str, value: float | int, limit: float | int, name: str) -> str:
    return (
        f"{param} is {value:g}, above this server's limit of {limit:g} "
        f"(its operator can raise it: marco serve --limit {_flag(name)}=N)"
    )
