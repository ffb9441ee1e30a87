"""A saved search tree in the shape of schema version 1 (docs/tree-schema.md
on the ui branch, written by ``marco_cli.treefile.tree_document``), built from
a SearchResult, so DPO tests can read files like the ones ``--save-tree``
writes before that module is merged here."""

from __future__ import annotations

from typing import Any

from marco_cli.search import tree_to_dict


def _with_parents(node: dict[str, Any], parent: int | None = None) -> dict[str, Any]:
    node["parent"] = parent
    for child in node["children"]:
        _with_parents(child, node["id"])
    return node


def saved_tree(result, detokenize, question: str, *, texts: bool = True) -> dict[str, Any]:
    return {
        "format": "marco-tree",
        "version": 1,
        "question": question,
        "model": "test",
        "options": {"mode": "mcts"},
        "stopped_by": result.stopped_by.value,
        "chosen_path": [n.id for n in result.path],
        "tree": _with_parents(tree_to_dict(result.root)),
        "rollouts": [
            {
                "node": r.node_id,
                "value": round(r.value, 6),
                "stop": r.stop.value,
                "n_rollout_tokens": r.n_rollout_tokens,
                "text": detokenize(r.tokens) if texts else None,
                "tokens": list(r.tokens),
                "confidences": [None if c is None else round(c, 6) for c in r.confidences],
            }
            for r in result.rollouts
        ],
        "events": [],
    }
