"""One gate for every file marco reads: trees, conversations, models.toml,
glossaries, datasets, results files, download stamps.

A file may be hand-edited, truncated, written by another program or made to
hurt. Parsing goes through here, and what comes out is plain data that the
rest of marco can hold, print and write back without a surprise:

- nesting at most ``MAX_NESTING`` deep (the parsers' own recursion limit,
  which would end in a RecursionError, is caught and reported the same way);
- integers of at most ``MAX_INT_DIGITS`` digits and within 64 bits (Python
  refuses to even convert 4300+ digits, with a ValueError of its own);
- no NaN or infinity (JSON's ``NaN``, ``1e999``, TOML's ``inf``);
- text that is real Unicode (JSON's ``"\\ud800"`` decodes to a lone
  surrogate, which no terminal or UTF-8 file can take).

Errors are ``UntrustedDataError`` (a ``ValueError``) saying what and where;
each reader adds its file name and turns it into its own typed error.
``read_text`` and ``load_config_toml`` do that part for the text files
(``models.toml``, glossaries, datasets), so each of those readers states
only its own schema.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from .errors import ConfigError

MAX_NESTING = 500
MAX_INT_DIGITS = 19
INT_LIMIT = 2**63


_TOO_DEEP = f"nested too deeply (more than {MAX_NESTING} levels)"


class UntrustedDataError(ValueError):
    """The data is not something marco accepts; the message says why and where."""


def load_json(data: bytes | str) -> Any:
    """``json.loads`` with the limits above; ``json.JSONDecodeError`` for bad
    syntax (as before), ``UntrustedDataError`` for everything else."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    try:
        value = json.loads(text, parse_int=_parse_int, parse_constant=_no_constant)
    except RecursionError:
        raise UntrustedDataError(_TOO_DEEP) from None
    check(value)
    return value


def load_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads`` with the limits above; ``tomllib.TOMLDecodeError`` for bad syntax."""
    try:
        table: dict[str, Any] = tomllib.loads(text)
    except RecursionError:
        raise UntrustedDataError(_TOO_DEEP) from None
    check(table)
    return table


def read_text(path: Path, what: str, error: Callable[[str], Exception]) -> str:
    """A text file's content, or ``error(message)`` naming the file when it is
    missing, unreadable or not UTF-8. A leading BOM (spreadsheet and editor
    exports) is dropped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: the {what} is not UTF-8 text (byte offset {exc.start})") from None


def load_config_toml(text: str, source: Path) -> dict[str, Any]:
    """``load_toml`` for a configuration file: every problem a ``ConfigError``
    naming ``source``."""
    try:
        return load_toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except UntrustedDataError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def check(value: Any) -> None:
    """Walk parsed data (iteratively) and refuse what marco cannot hold."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, where = stack.pop()
        if depth > MAX_NESTING:
            raise UntrustedDataError(_TOO_DEEP)
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -INT_LIMIT <= item < INT_LIMIT:
                raise UntrustedDataError(f"{_at(where)}an integer too large ({str(item)[:12]}…)")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UntrustedDataError(f"{_at(where)}{item} is not a finite number")
        elif isinstance(item, dict):
            for key, sub in item.items():
                check_text(str(key), where)
                stack.append((sub, depth + 1, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            stack.extend((sub, depth + 1, f"{where}[{i}]") for i, sub in enumerate(item))


def check_text(text: str, where: str = "") -> None:
    """Refuse lone surrogates: text that cannot be encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise UntrustedDataError(
            f"{_at(where)}a string holds an invalid character (U+{code:04X}, half of a UTF-16 pair)"
        ) from None


def _at(where: str) -> str:
    return f"'{where}': " if where else ""


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise UntrustedDataError(f"an integer of {len(digits.lstrip('-'))} digits is too large")
    return int(digits)


def _no_constant(name: str) -> float:
    raise UntrustedDataError(f"{name} is not a number marco accepts")
