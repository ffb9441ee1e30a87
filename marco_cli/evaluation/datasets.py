"""Benchmark files: MGSM-style TSV and GSM8K-style JSON Lines.

- TSV (``.tsv``, MGSM's own format): ``question<TAB>answer``, no header.
- JSON Lines (``.jsonl``/``.json``): ``{"question": ..., "answer": ...}`` per
  line, optional ``"id"``. A GSM8K answer is a worked solution ending in
  ``#### 72``; only the number after ``####`` is the reference.

Loading is strict: a malformed line stops with one message naming the file
and line, because a silently skipped question changes every accuracy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UsageError
from ..core.untrusted import UntrustedDataError, load_json, read_text
from .answers import reference_answer

GSM8K_MARK = "####"


class DatasetError(UsageError):
    """A benchmark file that cannot be read; the message names file and line."""


@dataclass(frozen=True)
class Problem:
    id: str  # stable across runs of the same file: "<stem>:<line>" or the JSONL "id"
    question: str
    reference: str  # canonical number (``answers.canonical``)


def load_dataset(path: Path) -> list[Problem]:
    lines = read_text(path, "dataset", DatasetError).splitlines()
    parse = _parse_jsonl if _is_jsonl(path, lines) else _parse_tsv
    problems = [parse(path, n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not problems:
        raise DatasetError(f"{path}: no questions in the file")
    seen: dict[str, int] = {}
    for index, problem in enumerate(problems):
        if problem.id in seen:
            raise DatasetError(f"{path}: question id '{problem.id}' appears twice")
        seen[problem.id] = index
    return problems


def _is_jsonl(path: Path, lines: list[str]) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return True
    if suffix == ".tsv":
        return False
    first = next((line for line in lines if line.strip()), "")
    return first.lstrip().startswith("{")


def _err(path: Path, line: int, message: str) -> DatasetError:
    return DatasetError(f"{path}:{line}: {message}")


def _reference(path: Path, line: int, answer: str) -> str:
    reference = reference_answer(answer)
    if reference is None:
        raise _err(path, line, f"the answer {answer.strip()[:40]!r} is not a number")
    return reference


def _parse_tsv(path: Path, line: int, text: str) -> Problem:
    fields = text.split("\t")
    if len(fields) != 2:
        raise _err(path, line, f"expected 'question<TAB>answer', found {len(fields)} tab-separated fields")
    question, answer = fields
    if not question.strip():
        raise _err(path, line, "the question is empty")
    return Problem(f"{path.stem}:{line}", question.strip(), _reference(path, line, answer))


def _parse_jsonl(path: Path, line: int, text: str) -> Problem:
    try:
        record = load_json(text)
    except json.JSONDecodeError as exc:
        raise _err(path, line, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except UntrustedDataError as exc:
        raise _err(path, line, str(exc)) from None
    if not isinstance(record, dict):
        raise _err(path, line, "expected a JSON object with 'question' and 'answer'")
    question, answer = record.get("question"), record.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise _err(path, line, "'question' must be a non-empty string")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise _err(path, line, "'answer' must be a string or a number")
    answer = str(answer)
    if GSM8K_MARK in answer:
        answer = answer.rsplit(GSM8K_MARK, 1)[1]
    ident = record.get("id", f"{path.stem}:{line}")
    if not isinstance(ident, (str, int)) or isinstance(ident, bool):
        raise _err(path, line, "'id' must be a string or an integer")
    return Problem(str(ident), question.strip(), _reference(path, line, answer))
