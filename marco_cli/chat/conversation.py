"""A chat conversation: its turns, its settings, and the JSON file it is saved as.

Earlier assistant turns go back to the model as their ``<Output>`` only: the
thought is kept in the file but never re-sent, as Marco-o1's format intends
(its training data are single turns whose reasoning is not part of the
dialogue), and it would fill the context fast. Turns whose answer failed are
kept too, so nothing the user typed is lost, but they are not re-sent either.

File format (``version`` 1)::

    {"version": 1, "model": "marco-o1:Q4_K_M", "mode": "cot",
     "settings": {"cot": {...}, "mcts": {...}}, "system": null,
     "turns": [{"user": "...", "assistant": "...", "thought": "..."}]}

A turn may also carry ``"error"`` (the model failed; ``assistant`` is empty).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.atomic import write_text_atomic
from ..core.errors import ConversationFileError
from ..core.settings import Mode
from ..core.untrusted import UntrustedDataError, load_json
from ..formats.prompts import Message
from .settings import ChatSettings

FORMAT_VERSION = 1
MAX_FILE_BYTES = 64 * 1024 * 1024  # far beyond any context; refuse before parsing


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str  # the answer (the <Output>) only: what the model sees again
    thought: str = ""
    error: str | None = None  # the model failed on this turn

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"user": self.user, "assistant": self.assistant, "thought": self.thought}
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass
class Conversation:
    model: str = ""  # a spec that resolves again: registry label, or a .gguf path
    settings: ChatSettings = field(default_factory=ChatSettings)
    turns: list[Turn] = field(default_factory=list)
    context_start: int = 0  # turns before this one no longer fit in the context

    @property
    def in_context(self) -> list[Turn]:
        return [t for t in self.turns[self.context_start :] if t.error is None]

    def history(self, start: int | None = None) -> tuple[Message, ...]:
        """The messages re-sent before the next question (from turn ``start``)."""
        first = self.context_start if start is None else start
        messages: list[Message] = []
        for turn in self.turns[first:]:
            if turn.error is None:
                messages += [Message("user", turn.user), Message("assistant", turn.assistant)]
        return tuple(messages)

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)

    def reset(self) -> None:
        self.turns.clear()
        self.context_start = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "model": self.model,
            "mode": self.settings.mode.value,
            "settings": self.settings.to_json(),
            "system": self.settings.system,
            "turns": [t.to_json() for t in self.turns],
        }

    @classmethod
    def from_json(cls, data: object) -> Conversation:
        """Validate a parsed file; raises ``ValueError`` saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported version {version!r} (this marco reads version {FORMAT_VERSION})")
        unknown = set(data) - {"version", "model", "mode", "settings", "system", "turns"}
        if unknown:
            raise ValueError(f"unknown key '{sorted(unknown)[0]}'")
        model = data.get("model", "")
        system = data.get("system")
        if not isinstance(model, str):
            raise ValueError("'model' must be a string")
        if system is not None and not isinstance(system, str):
            raise ValueError("'system' must be a string or null")
        try:
            mode = Mode(data.get("mode", Mode.COT.value))
        except ValueError:
            raise ValueError(f"'mode' must be cot, mcts or vote, got {data.get('mode')!r}") from None
        settings = ChatSettings.from_json(data.get("settings", {}), mode=mode, system=system)
        turns = data.get("turns", [])
        if not isinstance(turns, list):
            raise ValueError("'turns' must be a list")
        return cls(model, settings, [_turn(t, i) for i, t in enumerate(turns, 1)])


def _turn(data: object, number: int) -> Turn:
    where = f"turn {number}"
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    unknown = set(data) - {"user", "assistant", "thought", "error"}
    if unknown:
        raise ValueError(f"{where}: unknown key '{sorted(unknown)[0]}'")
    values = {}
    for key in ("user", "assistant", "thought"):
        value = data.get(key, "")
        if not isinstance(value, str):
            raise ValueError(f"{where}: '{key}' must be a string")
        values[key] = value
    error = data.get("error")
    if error is not None and not isinstance(error, str):
        raise ValueError(f"{where}: 'error' must be a string")
    if not values["user"].strip():
        raise ValueError(f"{where}: 'user' is empty")
    return Turn(values["user"], values["assistant"], values["thought"], error)


def save_conversation(conversation: Conversation, path: str | os.PathLike[str]) -> Path:
    """Write atomically: a crash or a full disk leaves the old file intact."""
    target = Path(path).expanduser()
    text = json.dumps(conversation.to_json(), ensure_ascii=False, indent=2) + "\n"
    if target.is_dir():
        raise ConversationFileError(f"{target}: is a directory")
    try:
        write_text_atomic(target, text)
    except OSError as exc:
        raise ConversationFileError(f"{target}: cannot save the conversation: {exc.strerror or exc}") from None
    return target


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail early for a ``--save`` path that cannot be written."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConversationFileError(f"{target}: is a directory")
    parent = target.parent
    if not parent.is_dir():
        raise ConversationFileError(f"{target}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConversationFileError(f"{target}: cannot write in {parent}")


def load_conversation(path: str | os.PathLike[str]) -> Conversation:
    source = Path(path).expanduser()
    try:
        if source.stat().st_size > MAX_FILE_BYTES:
            raise ConversationFileError(f"{source}: too large for a conversation file")
        raw = source.read_bytes()
    except FileNotFoundError:
        raise ConversationFileError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ConversationFileError(f"{source}: is a directory") from None
    except OSError as exc:
        raise ConversationFileError(f"{source}: cannot read it: {exc.strerror or exc}") from None
    try:
        data = load_json(raw)
    except UnicodeDecodeError:
        raise ConversationFileError(f"{source}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ConversationFileError(f"{source}: not a conversation file (invalid JSON at line {exc.lineno})") from None
    except UntrustedDataError as exc:
        raise ConversationFileError(f"{source}: not a conversation marco can use: {exc}") from None
    try:
        return Conversation.from_json(data)
    except ValueError as exc:
        raise ConversationFileError(f"{source}: {exc}") from None
