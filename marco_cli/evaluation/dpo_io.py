"""DPO pairs in and out: saved search trees (``--save-tree`` files, read and
validated by ``treefile.load_tree``) to ``TreeRecord``, and the
``marco eval --dpo-out`` collector.

The pairing itself (``dpo.py``) never sees a file format. A saved tree does
not hold the chat-formatted prompt, so pairs from files carry the question as
``prompt`` (``marco eval --dpo-out`` has the model at hand and records the
exact prompt text).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import TreeFileError
from ..reasoner import Answer
from ..search import NodeView
from ..treefile.io import SavedTree, load_tree
from .datasets import Problem
from .dpo import CompletePath, Pair, TreeRecord, make_pairs, rank_pairs, record_from_search, tree_index
from .results import JsonlWriter


def load_record(path: Path, *, reference: str | None = None) -> TreeRecord:
    """A saved tree as a ``TreeRecord``; ``reference`` (a canonical number)
    grades its paths, else they are ranked by value."""
    return record_from_saved(load_tree(path), reference=reference)


def question_id(question: str) -> str:
    """The same question gets the same id in every file, so
    ``--max-pairs-per-question`` counts across files."""
    return hashlib.sha1(question.encode("utf-8")).hexdigest()[:12]


def record_from_saved(saved: SavedTree, *, reference: str | None = None) -> TreeRecord:
    parents, prefix = tree_index(saved.root)
    texts = _path_texts(saved.root)
    source = str(saved.path)
    paths = tuple(_path(r, i, texts, source) for i, r in enumerate(saved.data["rollouts"]))
    return TreeRecord(
        question_id(saved.question), saved.question, saved.question, reference, parents, prefix, paths, source
    )


def _path_texts(root: NodeView) -> dict[int, str]:
    """Node id -> the text from the root to the end of that node."""
    texts: dict[int, str] = {}
    stack: list[tuple[NodeView, str]] = [(root, "")]
    while stack:
        view, above = stack.pop()
        texts[view.id] = above + (view.text if view.parent_id is not None else "")
        stack.extend((child, texts[view.id]) for child in view.children)
    return texts


def _path(raw: dict[str, Any], index: int, texts: dict[int, str], source: str) -> CompletePath:
    """One validated rollout (``load_tree`` checked keys and types)."""
    node, text = raw["node"], raw["text"]
    if text is None:
        if raw["n_rollout_tokens"]:  # the text past the node exists only as tokens
            raise TreeFileError(
                f"{source}: rollout {index}: its 'text' was not recorded, and the tokens past node "
                f"{node} cannot be read without the model"
            )
        text = texts[node]  # the path ends at the node: its text is the nodes' texts
    return CompletePath(node, tuple(raw["tokens"]), text, float(raw["value"]), raw["stop"])


class DpoCollector:
    """``marco eval --dpo-out``: pairs from each MCTS answer's in-memory tree,
    written per question (so ``max_pairs`` counts per question, across modes
    and samples) as soon as the run moves to the next question."""

    def __init__(
        self,
        writer: JsonlWriter,
        *,
        prompt_text: Callable[[str], str],
        detokenize: Callable[[Sequence[int]], str],
        source: str,
        max_pairs: int | None = None,
    ) -> None:
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
            answer.search,
            question_id=problem.id,
            question=problem.question,
            prompt=self.prompt_text(problem.question),
            reference=problem.reference,
            source=f"{self.source}:{row['mode']}:sample{row['sample']}",
            detokenize=self.detokenize,
        )
        self.pending.extend(make_pairs(record))

    def flush(self) -> None:
        for pair in rank_pairs(self.pending, self.max_pairs):
            self.writer.append(pair.to_json())
            self.written += 1
        self.pending = []

    def on_finish(self) -> None:
        self.flush()
