"""Saved trees: the schema round-trips, writes are atomic, and every broken
file is one line naming the file (exit code 2 from `marco replay`)."""

from __future__ import annotations

import json
import os

import pytest
from scripted_backend import ScriptedBackend
from typer.testing import CliRunner

from marco_cli.cli import app
from marco_cli.core.errors import TreeFileError, TreeSaveError
from marco_cli.core.settings import SearchSettings
from marco_cli.search import ObserverGroup, run_search, tree_to_dict
from marco_cli.treefile import io as treefile
from marco_cli.treefile.io import TreeRecorder, load_tree, options_dict, save_tree

PROMPT = "Question: add two and three\n"
SETTINGS = SearchSettings(simulations=6, children=2, max_tokens=150, reflection=True, seed=3)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


def searched(settings: SearchSettings = SETTINGS):
    backend = ScriptedBackend()
    recorder = TreeRecorder(clock=Clock())
    result = run_search(backend, backend.tokenize(PROMPT), settings, observer=ObserverGroup(recorder))
    return result, recorder


def save_searched(path):
    """The scripted search saved at PATH as `marco ask --save-tree` would."""
    result, recorder = searched()
    save_tree(
        path,
        result,
        question="add two and three",
        model="scripted",
        options=options_dict(SETTINGS, mode="mcts"),
        recorder=recorder,
    )
    return result, recorder


@pytest.fixture(scope="module")
def saved_doc(tmp_path_factory):
    path = tmp_path_factory.mktemp("trees") / "tree.json"
    return path, *save_searched(path)


def write(tmp_path, data, name="t.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


# -- round trip ---------------------------------------------------------------------


def test_save_then_load_round_trips(saved_doc):
    path, result, recorder = saved_doc
    saved = load_tree(path)
    assert saved.version == treefile.VERSION == 1
    assert (saved.question, saved.model) == ("add two and three", "scripted")
    assert saved.options["simulations"] == 6 and saved.options["action"] == "step" and saved.options["mode"] == "mcts"
    assert tree_to_dict(saved.root) == tree_to_dict(result.root)
    assert saved.chosen_path == tuple(n.id for n in result.path)
    assert list(saved.events) == recorder.events
    again = saved.result()
    assert again.stats == result.stats.__class__(**{**result.stats.__dict__, "seconds": round(result.stats.seconds, 3)})
    assert (again.answer_text, again.stopped_by, again.complete) == (
        result.answer_text,
        result.stopped_by,
        result.complete,
    )
    assert again.tokens == result.tokens


def test_document_holds_parents_rollouts_and_small_events(saved_doc):
    path, result, recorder = saved_doc
    data = json.loads(path.read_text())
    assert data["format"] == "marco-tree"
    stack = [data["tree"]]
    while stack:
        node = stack.pop()
        assert all(child["parent"] == node["id"] for child in node["children"])
        stack.extend(node["children"])
    assert data["tree"]["parent"] is None
    assert len(data["rollouts"]) == len(result.rollouts) == len(recorder.rollout_texts)
    first = data["rollouts"][0]
    assert first["text"] == recorder.rollout_texts[0] and first["tokens"] == list(result.rollouts[0].tokens)
    kinds = {e["type"] for e in data["events"]}
    assert kinds >= {
        "node_created",
        "node_expanded",
        "rollout_scored",
        "backpropagated",
        "iteration_done",
        "search_finished",
        "reflection_inserted",
    }
    assert all(len(json.dumps(e)) < 200 for e in data["events"])  # counters and ids, never trees
    times = [e["t"] for e in data["events"]]
    assert times[0] == 0.0 and times == sorted(times)


# -- atomic writes ------------------------------------------------------------------


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_failed_rename_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    result, recorder = searched()
    target = tmp_path / "tree.json"
    target.write_text("old contents")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(TreeSaveError, match=r"cannot write .*tree.json: No space left on device"):
        save_tree(target, result, question="q", model="m", options={}, recorder=recorder)
    assert target.read_text() == "old contents"
    assert _leftovers(tmp_path) == []


def test_failed_write_midway_leaves_no_half_file(tmp_path, monkeypatch):
    result, _ = searched()
    target = tmp_path / "tree.json"
    real_fsync = os.fsync

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(TreeSaveError):
        save_tree(target, result, question="q", model="m", options={})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_unserialisable_options_fail_before_touching_the_disk(tmp_path):
    result, _ = searched()
    target = tmp_path / "tree.json"
    target.write_text("old")
    with pytest.raises(ValueError):
        save_tree(target, result, question="q", model="m", options={"x": float("nan")})
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_missing_directory_is_a_save_error(tmp_path):
    result, _ = searched()
    with pytest.raises(TreeSaveError, match="cannot write"):
        save_tree(tmp_path / "nope" / "t.json", result, question="q", model="m", options={})


def test_saved_file_gets_ordinary_permissions(saved_doc):
    path, _, _ = saved_doc
    assert path.stat().st_mode & 0o644 == 0o644


# -- broken files -------------------------------------------------------------------


def _mutated(saved_doc, change) -> dict:
    data = json.loads(saved_doc[0].read_text())
    change(data)
    return data


def _set(path, value):
    def change(data):
        obj = data
        for key in path[:-1]:
            obj = obj[key]
        if value is KeyError:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value

    return change


def _renumber(node, new_id):
    node["id"] = new_id
    for child in node["children"]:
        child["parent"] = new_id


BROKEN = [
    (_set(("tree", "children", 0, "visits"), "many"), "node 1: 'visits' should be an integer, got 'many'"),
    (_set(("tree", "children", 0, "text"), KeyError), "node 1: missing 'text'"),
    (_set(("tree", "children", 0, "stop"), "bored"), "node 1: 'stop' has an unknown value 'bored'"),
    (_set(("tree", "children", 0, "tokens"), [1, "two"]), "node 1: 'tokens' should hold only integers, got 'two'"),
    (lambda d: _renumber(d["tree"]["children"][1], 1), "node 1: the id appears twice"),
    (_set(("tree", "children", 0, "parent"), 5), "node 1: 'parent' is 5 but it sits under 0"),
    (_set(("question",), KeyError), "missing 'question'"),
    (_set(("stopped_by",), "tired"), "'stopped_by' has an unknown value 'tired'"),
    (_set(("chosen_path",), [999]), "chosen_path: no node 999 in the tree"),
    (_set(("events", 0, "type"), "party"), "event 0: unknown event 'party'"),
    (_set(("events", 1, "parent"), 4), "event 1: node 4 is used before it is created"),
    (_set(("version",), 99), "tree file version 99 is newer than this marco reads (1); upgrade marco"),
    (_set(("version",), "1"), "'version' should be a positive integer, got '1'"),
    (_set(("format",), "other"), 'not a marco search tree (no "format": "marco-tree")'),
]


@pytest.mark.parametrize("change,message", BROKEN)
def test_broken_tree_is_one_line_naming_file_and_place(tmp_path, saved_doc, change, message):
    path = write(tmp_path, _mutated(saved_doc, change))
    with pytest.raises(TreeFileError) as info:
        load_tree(path)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    "content,message",
    [
        ("{", "not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
        ("[1, 2]", 'not a marco search tree (no "format": "marco-tree")'),
        ("", "not valid JSON (Expecting value at line 1, column 1)"),
    ],
)
def test_not_a_tree_file(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(TreeFileError) as info:
        load_tree(path)
    assert str(info.value) == f"{path}: {message}"


def test_unreadable_files(tmp_path):
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    for name, message in [("missing.json", "no such file"), ("bin.json", "not a text file (not UTF-8)"), (".", None)]:
        with pytest.raises(TreeFileError) as info:
            load_tree(tmp_path / name)
        if message:
            assert str(info.value) == f"{tmp_path / name}: {message}"


def test_replay_of_a_broken_file_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, "{}")
    result = CliRunner().invoke(app, ["replay", path])
    assert result.exit_code == 2
    assert result.stderr == f'marco: error: {path}: not a marco search tree (no "format": "marco-tree")\n'
    assert result.stdout == ""


def test_save_tree_needs_mcts():
    result = CliRunner().invoke(app, ["ask", "-m", "tiny", "--mode", "cot", "--save-tree", "x.json", "hi"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "marco: error: --save-tree needs --mode mcts (a chain of thought has no tree)"
    result = CliRunner().invoke(app, ["ask", "-m", "tiny", "--mode", "vote", "--save-tree", "x.json", "hi"])
    assert result.exit_code == 2 and result.stderr.strip().endswith("(a vote has no tree)")
