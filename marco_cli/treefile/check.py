"""Reading a saved search tree back: ``load_tree(path) -> SavedTree``.

Every problem is one ``TreeFileError`` line naming the file and the place
(``tree.json: node 7: 'visits' should be an integer``), never a traceback: a
tree file may be hand-edited, truncated by a crashed copy or written by a
newer marco. Keys beyond the schema are ignored; missing or mistyped ones are
errors. Events are checked in order (a node is created before it is used),
so a replay can trust them.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from ..backends.base import StopReason
from ..core.errors import TreeFileError
from ..core.untrusted import UntrustedDataError, load_json
from ..formats.reasoning import Reasoning, reasoning_format
from ..search import NodeView, SearchResult, SearchStats, StoppedBy, VoteSummary

FORMAT = "marco-tree"
VERSION = 1

# type tags: "int", "num" (int or float), "str", "bool", "list", "dict"; "?" allows null
_TOP = {"question": "str", "model": "str", "options": "dict", "stopped_by": "str", "answer": "dict",
        "stats": "dict", "chosen_path": "list", "tree": "dict", "rollouts": "list", "events": "list"}
_ANSWER = {"text": "str", "answer": "str", "thought": "str?", "value": "num", "complete": "bool",
           "tokens": "list", "confidences": "list"}
_NODE = {"id": "int", "parent": "int?", "depth": "int", "text": "str", "tokens": "list", "confidences": "list",
         "visits": "int", "total_value": "num", "mean_value": "num", "step_confidence": "num?",
         "rollouts": "int", "reflection": "bool", "terminal": "bool", "stop": "str?", "children": "list"}
_ROLLOUT = {"node": "int", "value": "num", "stop": "str", "n_rollout_tokens": "int", "text": "str?",
            "tokens": "list", "confidences": "list"}
_EVENTS = {
    "node_created": {"node": "int", "parent": "int?"},
    "node_expanded": {"parent": "int", "children": "list", "merged": "int"},
    "reflection_inserted": {"node": "int"},
    "rollout_scored": {"node": "int", "value": "num", "tokens": "int", "stop": "str"},
    "backpropagated": {"path": "list", "value": "num"},
    "iteration_done": {"iteration": "int", "simulations": "int", "nodes": "int", "tokens": "int", "elapsed": "num"},
    "search_finished": {"stopped_by": "str"},
}
_VOTE = {"answer": "str?", "share": "num", "voters": "int", "answers": "int"}  # optional, added in version 1
_OK = object()
# Counters added after version 1 first shipped have defaults and may be absent.
_STATS = {f.name: ("num" if f.name == "seconds" else "int") for f in fields(SearchStats) if f.default is MISSING}
_STATS_LATER = {f.name: f.default for f in fields(SearchStats) if f.default is not MISSING}
_NAMES = {"int": "an integer", "num": "a number", "str": "a string", "bool": "true or false",
          "list": "a list", "dict": "an object"}


@dataclass(frozen=True)
class SavedTree:
    """A loaded, validated tree file. ``data`` is the JSON as read (for
    readers that want fields this class does not lift, e.g. rollouts)."""

    path: Path
    version: int
    question: str
    model: str
    options: dict[str, Any]
    root: NodeView
    chosen_path: tuple[int, ...]
    events: tuple[dict[str, Any], ...]
    data: dict[str, Any]

    @property
    def simulations(self) -> int | None:
        value = self.options.get("simulations")
        return value if isinstance(value, int) else None

    def result(self) -> SearchResult:
        """The search's result as far as the file holds it (rollouts omitted)."""
        answer, stats = self.data["answer"], self.data["stats"]
        views = {n.id: n for n in self.root.walk()}
        later = {k: stats.get(k, default) for k, default in _STATS_LATER.items()}
        stop = answer.get("stop")
        vote = self.data.get("vote")
        return SearchResult(
            answer_text=answer["text"],
            tokens=tuple(answer["tokens"]),
            confidences=tuple(answer["confidences"]),
            path=tuple(views[i] for i in self.chosen_path),
            root=self.root,
            stats=SearchStats(**{k: stats[k] for k in _STATS}, **later),
            stopped_by=StoppedBy(self.data["stopped_by"]),
            value=float(answer["value"]),
            complete=answer["complete"],
            stop=StopReason(stop) if isinstance(stop, str) else None,
            vote=None if vote is None else VoteSummary(vote["answer"], float(vote["share"]), vote["voters"], vote["answers"]),
            reasoning=reasoning_format(answer.get("reasoning", Reasoning.MARCO)),
        )


def tree_from_dict(d: dict[str, Any], parent_id: int | None = None) -> NodeView:
    """Inverse of ``tree_to_dict`` (on a validated dict)."""
    return NodeView(
        id=d["id"], parent_id=parent_id, depth=d["depth"], text=d["text"], tokens=tuple(d["tokens"]),
        confidences=tuple(d["confidences"]), visits=d["visits"], total_value=float(d["total_value"]),
        mean_value=float(d["mean_value"]),
        step_confidence=None if d["step_confidence"] is None else float(d["step_confidence"]),
        rollouts=d["rollouts"], reflection=d["reflection"], terminal=d["terminal"],
        stop=None if d["stop"] is None else StopReason(d["stop"]),
        children=tuple(tree_from_dict(c, d["id"]) for c in d["children"]),
    )


def load_tree(path: str | os.PathLike[str]) -> SavedTree:
    """Read and validate a tree file; ``TreeFileError`` (one line) if it is not one."""
    path = Path(path)
    data = _read_json(path)
    check = _Checker(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        check.fail(f'not a marco search tree (no "format": "{FORMAT}")')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        check.fail(f"'version' should be a positive integer, got {version!r}")
    if version > VERSION:
        check.fail(f"tree file version {version} is newer than this marco reads ({VERSION}); upgrade marco")
    check.fields(data, _TOP, "")
    check.fields(data["answer"], _ANSWER, "answer: ")
    if "reasoning" in data["answer"]:  # files written before formats existed are Marco-o1's
        check.enum(Reasoning, data["answer"]["reasoning"], "answer: 'reasoning'")
    check.items(data["answer"]["tokens"], "int", "answer: 'tokens'")
    check.items(data["answer"]["confidences"], "num?", "answer: 'confidences'")
    check.fields(data["stats"], _STATS, "stats: ")
    check.fields(data["stats"], {k: "int" for k in _STATS_LATER if k in data["stats"]}, "stats: ")
    if data["answer"].get("stop") is not None:
        check.enum(StopReason, data["answer"]["stop"], "answer: 'stop'")
    if data.get("vote") is not None:
        check.fields(data["vote"], _VOTE, "vote: ")
    check.enum(StoppedBy, data["stopped_by"], "'stopped_by'")
    ids = check.nodes(data["tree"])
    for i in data["chosen_path"]:
        check.known(ids, i, "chosen_path")
    for n, rollout in enumerate(data["rollouts"]):
        check.fields(rollout, _ROLLOUT, f"rollout {n}: ")
        check.known(ids, rollout["node"], f"rollout {n}")
        check.items(rollout["tokens"], "int", f"rollout {n}: 'tokens'")
    check.events(data["events"], ids)
    return SavedTree(
        path=path, version=version, question=data["question"], model=data["model"], options=data["options"],
        root=tree_from_dict(data["tree"]), chosen_path=tuple(data["chosen_path"]),
        events=tuple(data["events"]), data=data,
    )


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TreeFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TreeFileError(f"{path}: is a directory, not a tree file") from None
    except OSError as exc:
        raise TreeFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return load_json(raw)
    except UnicodeDecodeError:
        raise TreeFileError(f"{path}: not a text file (not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise TreeFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except UntrustedDataError as exc:
        raise TreeFileError(f"{path}: {exc}") from None


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str) -> None:
        raise TreeFileError(f"{self.path}: {message}")

    def fields(self, obj: Any, spec: dict[str, str], where: str) -> None:
        if not isinstance(obj, dict):
            self.fail(f"{where or 'the file'} should be an object")
        for key, kind in spec.items():
            if key not in obj:
                self.fail(f"{where}missing '{key}'")
            if not _is(obj[key], kind):
                self.fail(f"{where}'{key}' should be {_NAMES[kind.rstrip('?')]}, got {_show(obj[key])}")

    def items(self, values: list[Any], kind: str, what: str) -> None:
        bad = next((v for v in values if not _is(v, kind)), _OK)
        if bad is not _OK:
            self.fail(f"{what} should hold only {_NAMES[kind.rstrip('?')].split(' ', 1)[1]}s, got {_show(bad)}")

    def enum(self, enum: type, value: Any, what: str) -> None:
        try:
            enum(value)
        except ValueError:
            self.fail(f"{what} has an unknown value {value!r}")

    def known(self, ids: set[int], value: Any, where: str) -> None:
        if not _is(value, "int") or value not in ids:
            self.fail(f"{where}: no node {value!r} in the tree")

    def nodes(self, root: Any) -> set[int]:
        """Check every node (iteratively: a deep tree is no reason to crash)."""
        ids: set[int] = set()
        stack: list[tuple[Any, int | None]] = [(root, None)]
        while stack:
            node, parent = stack.pop()
            where = f"node {node.get('id')!r}: " if isinstance(node, dict) else "tree: "
            self.fields(node, _NODE, where)
            if node["id"] in ids:
                self.fail(f"{where}the id appears twice")
            if node["parent"] != parent:
                self.fail(f"{where}'parent' is {node['parent']!r} but it sits under {parent!r}")
            if node["stop"] is not None:
                self.enum(StopReason, node["stop"], f"{where}'stop'")
            self.items(node["tokens"], "int", f"{where}'tokens'")
            self.items(node["confidences"], "num?", f"{where}'confidences'")
            ids.add(node["id"])
            stack.extend((child, node["id"]) for child in node["children"])
        return ids

    def events(self, events: list[Any], ids: set[int]) -> None:
        created: set[int] = set()
        for n, event in enumerate(events):
            where = f"event {n}: "
            kind = event.get("type") if isinstance(event, dict) else event
            if not isinstance(kind, str) or kind not in _EVENTS:
                self.fail(f"{where}unknown event {_show(kind)}")
            self.fields(event, {"t": "num", **_EVENTS[kind]}, where)
            if kind == "node_created" and event["node"] in created:
                self.fail(f"{where}node {event['node']} is created twice")
            if kind == "rollout_scored":
                self.enum(StopReason, event["stop"], f"{where}'stop'")
            if kind == "search_finished":
                self.enum(StoppedBy, event["stopped_by"], f"{where}'stopped_by'")
            if kind == "backpropagated" and not event["path"]:
                self.fail(f"{where}'path' is empty")
            for key in ("node", "parent", "children", "path"):
                if key not in event:
                    continue
                refs = event[key]
                for ref in refs if isinstance(refs, list) else [refs]:
                    if ref is None and key == "parent" and kind == "node_created" and not created:
                        continue  # the root
                    self.known(ids, ref, f"event {n} ({key})")
                    if ref not in created and not (key == "node" and kind == "node_created"):
                        self.fail(f"{where}node {ref} is used before it is created")
            if kind == "node_created":
                created.add(event["node"])


def _is(value: Any, kind: str) -> bool:
    if kind.endswith("?"):
        return value is None or _is(value, kind[:-1])
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"str": str, "bool": bool, "list": list, "dict": dict}[kind])


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
