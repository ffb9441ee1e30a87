"""The results file of ``marco eval``: one JSON line per answered
(question, mode, sample), appended and flushed as soon as it exists, so a run
killed at any point loses at most the answer in progress and ``--resume``
continues from the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.atomic import DurableAppender
from ..core.errors import OutputError, UsageError
from ..core.untrusted import UntrustedDataError, load_json

Key = tuple[str, str, int]  # (question_id, mode, sample)
REQUIRED = ("question_id", "mode", "sample", "question", "correct", "tokens", "seconds", "settings")


class ResultsError(UsageError):
    """A results file that cannot be resumed; the message names file and line."""


def row_key(row: dict[str, Any]) -> Key:
    return (str(row["question_id"]), str(row["mode"]), int(row["sample"]))


def read_rows(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """(line number, row) for every row, and the byte length of the sound part.

    A last line without its newline that does not parse is an answer torn by a
    kill mid-write: it is left out (and later cut off), not an error.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror}") from None
    rows, good, offset = [], 0, 0
    for number, raw in enumerate(data.splitlines(keepends=True), 1):
        offset += len(raw)
        if not raw.strip():
            good = offset
            continue
        torn = not raw.endswith(b"\n") and offset == len(data)
        try:
            row = load_json(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, UntrustedDataError):
            if torn:
                break
            raise ResultsError(f"{path}:{number}: not a JSON line; is this a marco eval results file?") from None
        if not isinstance(row, dict) or any(k not in row for k in REQUIRED):
            raise ResultsError(f"{path}:{number}: not a marco eval result (needs {', '.join(REQUIRED)})")
        rows.append((number, row))
        good = offset
    return rows, good


class JsonlWriter:
    """Appends JSON lines; each is one whole line, on disk (fsync'd) before
    ``append`` returns, and a line that cannot be written is cut off again
    (``core.atomic.DurableAppender``): a full disk leaves the rows written so
    far and no half line.

    ``resume=False`` refuses an existing file rather than mixing two runs in it;
    ``keep_bytes`` (from ``read_rows``) cuts a torn last line first.
    """

    def __init__(self, path: Path, *, resume: bool, keep_bytes: int | None = None, option: str = "--out") -> None:
        self.path = path
        if path.exists() and not resume:
            raise ResultsError(
                f"{path} already exists", hint=f"pass --resume to continue that run, or choose another {option}"
            )
        try:
            self._file = DurableAppender(path, keep_bytes=keep_bytes)
        except OSError as exc:
            raise ResultsError(f"cannot write {path}: {exc.strerror}") from None

    def append(self, row: dict[str, Any]) -> None:
        try:
            self._file.append((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        except OSError as exc:
            raise OutputError(
                f"cannot write {self.path}: {exc.strerror or exc}; the rows written before are kept"
            ) from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
