"""DPO pairs in and out: saved search trees (``--save-tree`` files) to
``TreeRecord``, and the ``marco eval --dpo-out`` collector.

The saved-tree reader is a thin adapter over the dict of schema version 1
(``docs/tree-schema.md`` on the ui branch: ``question``, ``tree`` in
``tree_to_dict`` form, ``rollouts`` with ``node``, ``tokens``, ``text``,
``value``, ``stop``); the pairing itself (``dpo.py``) never sees a file
format. A saved tree does not hold the chat-formatted prompt, so pairs from
files carry the question as ``prompt``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..reasoner import Answer
from .answers import reference_answer
from .datasets import Problem
from .dpo import CompletePath, Pair, TreeRecord, make_pairs, rank_pairs, record_from_search
from .results import JsonlWriter


class TreeFileError(UsageError):
    """A saved tree that cannot be turned into pairs; names the file and what is missing."""


def load_tree_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TreeFileError(f"tree file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TreeFileError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise TreeFileError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise TreeFileError(f"{path}: expected a JSON object (a tree saved with --save-tree)")
    return data


TREE_FORMAT, TREE_VERSION = "marco-tree", 1


def record_from_dict(data: dict[str, Any], source: str, *, reference: str | None = None) -> TreeRecord:
    """Adapter from a saved tree (schema v1). ``reference`` (a canonical number)
    grades the paths; without it they are ranked by value."""
    if data.get("format", TREE_FORMAT) != TREE_FORMAT:
        raise TreeFileError(f"{source}: not a marco search tree (format {data.get('format')!r})")
    version = data.get("version", TREE_VERSION)
    if not isinstance(version, int) or version > TREE_VERSION:
        raise TreeFileError(f"{source}: tree file version {version!r} is newer than this marco reads; upgrade marco")
    question = data.get("question")
    if not isinstance(question, str) or not question:
        raise TreeFileError(f"{source}: no 'question' in the saved tree")
    root = data.get("tree")
    if not isinstance(root, dict):
        raise TreeFileError(f"{source}: no 'tree' in the saved tree")
    parents: dict[int, int | None] = {}
    prefix: dict[int, int] = {}
    texts: dict[int, str] = {}
    _index(root, None, 0, "", parents, prefix, texts, source)
    paths = tuple(_path(r, i, parents, texts, source) for i, r in enumerate(_rollouts(data, source)))
    if reference is None and isinstance(data.get("reference"), (str, int, float)):
        reference = reference_answer(str(data["reference"]))  # not in schema v1; a script may add it
    # The same question gets the same id in every file, so --max-pairs-per-question spans files.
    qid = data.get("question_id") or hashlib.sha1(question.encode("utf-8")).hexdigest()[:12]
    return TreeRecord(str(qid), question, question, reference, parents, prefix, paths, source)


def _index(node: Any, parent: int | None, above: int, text_above: str, parents, prefix, texts, source) -> None:
    if not isinstance(node, dict) or not isinstance(node.get("id"), int):
        raise TreeFileError(f"{source}: a tree node without an integer 'id'")
    ident = node["id"]
    own = node.get("tokens", [])
    prefix[ident] = above + (len(own) if parent is not None else 0)
    parents[ident] = parent
    texts[ident] = text_above + (str(node.get("text", "")) if parent is not None else "")
    for child in node.get("children", []):
        _index(child, ident, prefix[ident], texts[ident], parents, prefix, texts, source)


def _rollouts(data: dict[str, Any], source: str) -> list[Any]:
    rollouts = data.get("rollouts")
    if not isinstance(rollouts, list):
        raise TreeFileError(f"{source}: no 'rollouts' (complete paths) in the saved tree")
    return rollouts


def _path(raw: Any, index: int, parents, texts, source: str) -> CompletePath:
    where = f"{source}: rollout {index}"
    node = raw.get("node") if isinstance(raw, dict) else None
    if not isinstance(node, int) or isinstance(node, bool) or node not in parents:
        raise TreeFileError(f"{where}: needs 'node', the id of a node in the tree")
    value = raw.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TreeFileError(f"{where}: needs a numeric 'value'")
    tokens = tuple(raw.get("tokens") or ())
    text = raw.get("text")
    if not isinstance(text, str):
        if raw.get("n_rollout_tokens", 0):  # text past the node exists only as tokens
            raise TreeFileError(f"{where}: its 'text' was not recorded, and the tokens past node {node} cannot be read without the model")
        text = texts[node]  # the path ends at the node: its text is the nodes' texts
    return CompletePath(node, tokens, text, float(value), str(raw.get("stop", "")))


class DpoCollector:
    """``marco eval --dpo-out``: pairs from each MCTS answer's in-memory tree,
    written per question (so ``max_pairs`` counts per question, across modes
    and samples) as soon as the run moves to the next question."""

    def __init__(self, writer: JsonlWriter, *, prompt_text: Callable[[str], str],
                 detokenize: Callable[[Sequence[int]], str], source: str, max_pairs: int | None = None) -> None:
        self.writer = writer
        self.prompt_text = prompt_text
        self.detokenize = detokenize
        self.source = source
        self.max_pairs = max_pairs
        self.pending: list[Pair] = []
        self.question: str | None = None
        self.written = 0

    def on_start(self, pending: int, done: int) -> None:
        pass

    def on_row(self, row: dict[str, Any], problem: Problem, answer: Answer | None) -> None:
        if problem.id != self.question:
            self.flush()
            self.question = problem.id
        if answer is None or answer.search is None:
            return
        record = record_from_search(
            answer.search, question_id=problem.id, question=problem.question,
            prompt=self.prompt_text(problem.question), reference=problem.reference,
            source=f"{self.source}:{row['mode']}:sample{row['sample']}", detokenize=self.detokenize,
        )
        self.pending.extend(make_pairs(record))

    def flush(self) -> None:
        for pair in rank_pairs(self.pending, self.max_pairs):
            self.writer.append(pair.to_json())
            self.written += 1
        self.pending = []

    def on_finish(self) -> None:
        self.flush()
