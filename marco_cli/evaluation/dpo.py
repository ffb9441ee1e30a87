"""Preference pairs from search trees (Marco-o1 v2, arXiv 2503.01461; docs/algorithm.md s. 3).

Every finished rollout of a search is a complete path from the prompt to an
answer. Two paths of the same question part at their deepest common
ancestor; everything above it is text both share. v2 masks that shared
prefix in the DPO loss, so each pair records its length in tokens
(``shared_prefix_tokens``: the tokens of the common path, root excluded;
``chosen`` and ``rejected`` both start with exactly those tokens).

Which side wins:
- a reference answer is known: correct beats wrong (same-grade paths make no pair);
- otherwise: a path that finished (``</Output>`` or end of sequence) beats one
  cut off by the token cap, then the higher eq. 2 value wins; equal ranks make
  no pair.
Pairs are deduplicated by (chosen text, rejected text) and ranked by value
gap (then by longer shared prefix: the more they share, the sharper the
signal), so ``max_pairs`` keeps the clearest ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..search import NodeView, SearchResult
from .answers import extract_answer, is_correct

FINISHED_STOPS = ("output_end", "eos")


@dataclass(frozen=True)
class CompletePath:
    node_id: int  # tree node the rollout started from
    tokens: tuple[int, ...]  # generated tokens from the root (not the prompt)
    text: str
    value: float
    stop: str  # StopReason value


@dataclass(frozen=True)
class TreeRecord:
    """One search tree, reduced to what pairing needs."""

    question_id: str
    question: str
    prompt: str  # the text the model continued (chat template applied), or the question
    reference: str | None  # canonical numeric answer when known
    parents: dict[int, int | None]  # node id -> parent id (root -> None)
    prefix_tokens: dict[int, int]  # node id -> generated tokens from the root to its end
    paths: tuple[CompletePath, ...]
    source: str


@dataclass(frozen=True)
class Pair:
    record: TreeRecord
    chosen: CompletePath
    rejected: CompletePath
    ancestor: int
    shared_prefix_tokens: int

    @property
    def gap(self) -> float:
        return self.chosen.value - self.rejected.value

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "prompt": r.prompt,
            "chosen": self.chosen.text,
            "rejected": self.rejected.text,
            "question_id": r.question_id,
            "shared_prefix_tokens": self.shared_prefix_tokens,
            "chosen_value": round(self.chosen.value, 6),
            "rejected_value": round(self.rejected.value, 6),
            "source": r.source,
            # metadata beyond the standard fields, for auditing a pair
            "question": r.question,
            "reference": r.reference,
            "chosen_answer": extract_answer(self.chosen.text),
            "rejected_answer": extract_answer(self.rejected.text),
            "ancestor_node": self.ancestor,
        }


def tree_index(root: NodeView) -> tuple[dict[int, int | None], dict[int, int]]:
    parents: dict[int, int | None] = {}
    prefix: dict[int, int] = {}

    def visit(view: NodeView, parent: int | None, above: int) -> None:
        parents[view.id] = parent
        prefix[view.id] = above + (len(view.tokens) if parent is not None else 0)
        for child in view.children:
            visit(child, view.id, prefix[view.id])

    visit(root, None, 0)
    return parents, prefix


def record_from_search(
    result: SearchResult,
    *,
    question_id: str,
    question: str,
    prompt: str,
    reference: str | None,
    source: str,
    detokenize: Callable[[Sequence[int]], str],
) -> TreeRecord:
    """In-memory path (``marco eval --dpo-out``): no file format involved."""
    parents, prefix = tree_index(result.root)
    paths = tuple(
        CompletePath(r.node_id, r.tokens, detokenize(r.tokens), r.value, r.stop.value) for r in result.rollouts
    )
    return TreeRecord(question_id, question, prompt, reference, parents, prefix, paths, source)


def _lineage(parents: dict[int, int | None], node: int) -> list[int]:
    chain: list[int] = []
    walker: int | None = node
    while walker is not None:
        chain.append(walker)
        walker = parents[walker]
    return chain[::-1]


def common_ancestor(parents: dict[int, int | None], a: int, b: int) -> int:
    """Deepest node on both root-to-node chains (a node is its own ancestor)."""
    deepest = None
    for x, y in zip(_lineage(parents, a), _lineage(parents, b)):
        if x != y:
            break
        deepest = x
    if deepest is None:
        raise ValueError(f"nodes {a} and {b} are not in one tree")
    return deepest


def make_pairs(record: TreeRecord, *, grade: Callable[[str], bool] | None = None) -> list[Pair]:
    """Every preference pair of one tree, best first (see the module docstring)."""
    if grade is None and record.reference is not None:
        reference = record.reference
        grade = lambda text: is_correct(extract_answer(text), reference)  # noqa: E731
    paths = _distinct(record.paths)
    if grade is not None:
        verdict = {id(p): grade(p.text) for p in paths}
        ordered = [(c, w) for c in paths for w in paths if verdict[id(c)] and not verdict[id(w)]]
    else:

        def rank(p: CompletePath) -> tuple[bool, float]:
            return (p.stop in FINISHED_STOPS, p.value)

        ordered = [(a, b) for a in paths for b in paths if rank(a) > rank(b)]
    pairs = []
    for chosen, rejected in ordered:
        ancestor = common_ancestor(record.parents, chosen.node_id, rejected.node_id)
        pairs.append(Pair(record, chosen, rejected, ancestor, record.prefix_tokens[ancestor]))
    return rank_pairs(pairs)


def _distinct(paths: Iterable[CompletePath]) -> list[CompletePath]:
    """One path per text (the higher value): two rollouts that wrote the same
    text would make pairs whose sides are equal."""
    best: dict[str, CompletePath] = {}
    for path in paths:
        if path.text not in best or path.value > best[path.text].value:
            best[path.text] = path
    return list(best.values())


def rank_pairs(pairs: Iterable[Pair], max_pairs: int | None = None) -> list[Pair]:
    """Dedupe by (chosen, rejected) text, order by value gap then shared prefix, cap."""
    ordered = sorted(pairs, key=lambda p: (-p.gap, -p.shared_prefix_tokens, p.chosen.node_id, p.rejected.node_id))
    seen: set[tuple[str, str]] = set()
    kept = []
    for pair in ordered:
        key = (pair.chosen.text, pair.rejected.text)
        if key in seen or pair.chosen.text == pair.rejected.text:
            continue
        seen.add(key)
        kept.append(pair)
    return kept[:max_pairs] if max_pairs is not None else kept
