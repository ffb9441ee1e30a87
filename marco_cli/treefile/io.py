"""Saved search trees: ``--save-tree FILE.json`` writes one, ``marco replay``
and ``marco eval`` read one. The schema (version 1) is documented in
``docs/tree-schema.md``; ``check.py`` validates it on load.

A file is written atomically (temp file in the same directory, fsync, then
rename): a reader never sees half a file, and a failed write keeps the old
one. Nodes use ``search.tree_to_dict``'s format (plus ``parent``), so golden
tests, ``--json`` and saved trees agree on what a node is.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Any

from .. import __version__
from ..backends.base import StopReason
from ..core.atomic import write_text_atomic
from ..core.errors import TreeSaveError
from ..core.settings import SearchSettings
from ..search import SearchResult, tree_to_dict
from ..search.events import (
    Backpropagated,
    Event,
    IterationDone,
    NodeCreated,
    NodeExpanded,
    ReflectionInserted,
    RolloutScored,
    SearchFinished,
)
from .check import FORMAT, VERSION, SavedTree, load_tree, tree_from_dict

__all__ = [
    "FORMAT",
    "VERSION",
    "SavedTree",
    "TreeRecorder",
    "event_dict",
    "load_tree",
    "options_dict",
    "save_tree",
    "tree_document",
    "tree_from_dict",
    "write_atomic",
]

_DIGITS = 6


def _r(x: float) -> float:
    return round(float(x), _DIGITS)


def event_dict(event: Event, t: float) -> dict[str, Any] | None:
    """The small dict one event is saved as: ids and counters, never texts or
    trees (node data lives in ``tree``, rollout texts in ``rollouts``)."""
    d: dict[str, Any]
    if isinstance(event, NodeCreated):
        d = {"type": "node_created", "node": event.node_id, "parent": event.parent_id}
    elif isinstance(event, NodeExpanded):
        d = {
            "type": "node_expanded",
            "parent": event.parent_id,
            "children": list(event.child_ids),
            "merged": event.merged,
        }
    elif isinstance(event, ReflectionInserted):
        d = {"type": "reflection_inserted", "node": event.node_id}
    elif isinstance(event, RolloutScored):
        d = {
            "type": "rollout_scored",
            "node": event.node_id,
            "value": _r(event.value),
            "tokens": event.n_tokens,
            "stop": event.stop.value,
        }
    elif isinstance(event, Backpropagated):
        d = {"type": "backpropagated", "path": list(event.path_ids), "value": _r(event.value)}
    elif isinstance(event, IterationDone):
        d = {
            "type": "iteration_done",
            "iteration": event.iteration,
            "simulations": event.simulations,
            "nodes": event.nodes,
            "tokens": event.tokens,
            "elapsed": round(event.elapsed, 3),
        }
    elif isinstance(event, SearchFinished):
        d = {"type": "search_finished", "stopped_by": event.result.stopped_by.value}
    else:
        return None
    return {"t": round(t, 3), **d}


class TreeRecorder:
    """Observer that keeps the event sequence (as ``event_dict``s, each with
    ``t``, seconds since the first event) and every rollout's text."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.events: list[dict[str, Any]] = []
        self.rollout_texts: list[str] = []
        self._clock = clock
        self._start: float | None = None

    def on_event(self, event: Event) -> None:
        now = self._clock()
        if self._start is None:
            self._start = now
        if isinstance(event, RolloutScored):
            self.rollout_texts.append(event.answer_text)
        d = event_dict(event, now - self._start)
        if d is not None:
            self.events.append(d)


def options_dict(settings: SearchSettings, **extra: Any) -> dict[str, Any]:
    """Search settings as JSON values (enums by value), plus ``extra``."""
    out = {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(settings).items()}
    out.update(extra)
    return out


def _node_dicts(result: SearchResult) -> dict[str, Any]:
    tree = tree_to_dict(result.root, digits=_DIGITS)
    stack: list[tuple[dict[str, Any], int | None]] = [(tree, None)]
    while stack:
        node, parent = stack.pop()
        node["parent"] = parent
        stack.extend((child, node["id"]) for child in node["children"])
    return tree


def _confs(values: Iterable[float | None]) -> list[float | None]:
    return [None if c is None else _r(c) for c in values]


def tree_document(
    result: SearchResult,
    *,
    question: str,
    model: str,
    options: Mapping[str, Any],
    recorder: TreeRecorder | None = None,
) -> dict[str, Any]:
    """The whole search as one JSON-ready dict (schema ``VERSION``)."""
    parsed = result.reasoning.parse(result.answer_text)
    texts = recorder.rollout_texts if recorder and len(recorder.rollout_texts) == len(result.rollouts) else None
    stats = {**asdict(result.stats), "seconds": round(result.stats.seconds, 3)}
    stats["tokens_per_second"] = round(result.stats.tokens_per_second, 1)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "marco_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "question": question,
        "model": model,
        "options": dict(options),
        "stopped_by": result.stopped_by.value,
        "answer": {
            "text": result.answer_text,
            "answer": parsed.answer,
            "thought": parsed.thought,  # null: the model has no thought format
            "reasoning": result.reasoning.name,
            "value": _r(result.value),
            "complete": result.complete,
            "stop": result.stop.value if result.stop is not None else None,
            "tokens": list(result.tokens),
            "confidences": _confs(result.confidences),
        },
        "stats": stats,
        "vote": None
        if result.vote is None
        else {
            "answer": result.vote.answer_key,
            "share": _r(result.vote.share),
            "voters": result.vote.voters,
            "answers": result.vote.answers,
        },
        "picks": [
            {
                "pick": p.pick.value,
                "answer": p.answer_key,
                "value": _r(p.value),
                "node": p.node_id,
                "complete": p.complete,
                "estimated": p.estimated,
            }
            for p in result.picks
        ],
        "chosen_path": [node.id for node in result.path],
        "tree": _node_dicts(result),
        "rollouts": [
            {
                "node": r.node_id,
                "value": _r(r.value),
                "stop": r.stop.value if isinstance(r.stop, StopReason) else str(r.stop),
                "n_rollout_tokens": r.n_rollout_tokens,
                "answer": r.answer_key,
                "text": texts[i] if texts else None,
                "tokens": list(r.tokens),
                "confidences": _confs(r.confidences),
            }
            for i, r in enumerate(result.rollouts)
        ],
        "events": list(recorder.events) if recorder else [],
    }
    if result.error:  # stopped_by "backend_failed": what broke
        document["error"] = result.error
    return document


def save_tree(
    path: str | os.PathLike[str],
    result: SearchResult,
    *,
    question: str,
    model: str,
    options: Mapping[str, Any],
    recorder: TreeRecorder | None = None,
) -> Path:
    """Write the search to ``path`` atomically; returns the path."""
    doc = tree_document(result, question=question, model=model, options=options, recorder=recorder)
    # Serialise first: a value JSON cannot hold fails here, before the disk is touched.
    text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
    target = Path(path)
    write_atomic(target, text)
    return target


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` all at once, or raise ``TreeSaveError``
    leaving any existing file as it was and no temp file behind."""
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise TreeSaveError(f"cannot write {path}: {exc.strerror or exc}") from None
