"""Preference pairs from search trees: a hand-built tree with known answers,
a scripted-backend search (in memory, and saved by ``treefile.save_tree`` and
read back), and ``marco export-dpo``."""

from __future__ import annotations

import json

import pytest
from scripted_backend import ScriptedBackend
from typer.testing import CliRunner

from marco_cli.backends.base import StopReason
from marco_cli.cli import app
from marco_cli.core.errors import TreeFileError
from marco_cli.core.settings import SearchSettings
from marco_cli.evaluation.dpo import (
    FINISHED_STOPS,
    CompletePath,
    TreeRecord,
    common_ancestor,
    make_pairs,
    rank_pairs,
    record_from_search,
    tree_index,
)
from marco_cli.evaluation.dpo_io import load_record, question_id
from marco_cli.search import NodeView, Rollout, SearchResult, SearchStats, StoppedBy, run_search
from marco_cli.treefile.io import TreeRecorder, options_dict, save_tree

FIELDS = {
    "prompt",
    "chosen",
    "rejected",
    "question_id",
    "shared_prefix_tokens",
    "chosen_value",
    "rejected_value",
    "source",
}


def nv(ident, parent, tokens, *children):
    return NodeView(ident, parent, 0, "", tuple(tokens), (), 0, 0.0, 0.0, None, 0, False, False, None, tuple(children))


#   0 ── 1 (2 tokens) ── 3 (1 token)
#   │                └─ 4 (2 tokens)
#   └─ 2 (1 token)
ROOT = nv(0, None, [], nv(1, 0, [1, 2], nv(3, 1, [3]), nv(4, 1, [4, 5])), nv(2, 0, [6]))
A = CompletePath(3, (1, 2, 3, 7), "<Output>7</Output>", 0.9, "output_end")
B = CompletePath(4, (1, 2, 4, 5, 8), "<Output>8</Output>", 0.5, "output_end")
C = CompletePath(2, (6, 9), "so it is 7", 0.4, "eos")
D = CompletePath(1, (1, 2, 10), "still thinking about", 0.95, "length")


def record(reference=None, paths=(A, B, C, D)):
    parents, prefix = tree_index(ROOT)
    return TreeRecord("q1", "What?", "PROMPT", reference, parents, prefix, tuple(paths), "hand")


def test_tree_index_and_common_ancestor():
    parents, prefix = tree_index(ROOT)
    assert prefix == {0: 0, 1: 2, 3: 3, 4: 4, 2: 1}
    assert common_ancestor(parents, 3, 4) == 1
    assert common_ancestor(parents, 3, 2) == 0
    assert common_ancestor(parents, 1, 4) == 1  # a node is its own ancestor


def test_known_answer_correct_beats_wrong():
    pairs = make_pairs(record(reference="7"))
    got = [(p.chosen.node_id, p.rejected.node_id, p.ancestor, p.shared_prefix_tokens) for p in pairs]
    # by value gap: A-B .4, A-D -.05, C-B -.1, C-D -.55
    assert got == [(3, 4, 1, 2), (3, 1, 1, 2), (2, 4, 0, 0), (2, 1, 0, 0)]
    data = pairs[0].to_json()
    assert set(data) >= FIELDS
    assert (data["chosen_value"], data["rejected_value"], data["prompt"]) == (0.9, 0.5, "PROMPT")
    assert (data["chosen_answer"], data["rejected_answer"], data["reference"]) == ("7", "8", "7")


def test_unknown_answer_finished_then_value():
    pairs = make_pairs(record())
    got = {(p.chosen.node_id, p.rejected.node_id) for p in pairs}
    # D has the highest value but was cut off by the token cap: it never wins
    assert got == {(3, 4), (3, 2), (3, 1), (4, 2), (4, 1), (2, 1)}
    assert [round(p.gap, 2) for p in pairs][:2] == [0.5, 0.4]


def test_no_pairs_when_every_path_has_the_same_grade():
    assert make_pairs(record(reference="7", paths=(A, C))) == []
    assert make_pairs(record(reference="5")) == []


def test_dedupe_and_cap():
    twin = CompletePath(4, (1, 2, 4, 5, 9), B.text, 0.3, "output_end")  # same text as B
    pairs = make_pairs(record(reference="7", paths=(A, B, twin, C)))
    assert len(pairs) == 2  # A>B, C>B: the twin adds nothing
    capped = rank_pairs(pairs + pairs, max_pairs=1)
    assert [(p.chosen.node_id, p.rejected.node_id) for p in capped] == [(3, 4)]


# -- a real search tree (scripted backend) ---------------------------------------

SETTINGS = SearchSettings(simulations=6, children=3, max_depth=4, max_tokens=120, seed=3)


QUESTION = "add two and three"


@pytest.fixture(scope="module")
def searched():
    backend = ScriptedBackend()
    recorder = TreeRecorder()
    result = run_search(backend, backend.tokenize(f"Question: {QUESTION}\n"), SETTINGS, observer=recorder)
    return backend, result, recorder


def save(path, result, recorder=None, question=QUESTION):
    """The file `marco ask --save-tree` writes, by the same function."""
    return save_tree(
        path,
        result,
        question=question,
        model="scripted",
        options=options_dict(SETTINGS, mode="mcts"),
        recorder=recorder,
    )


def ancestors(parents, node):
    chain = []
    while node is not None:
        chain.append(node)
        node = parents[node]
    return chain


def _check_pairs(pairs, record_):
    """Sides differ, both start with the shared prefix, whose length is the
    common ancestor's path length, and the ancestor is the deepest shared node."""
    assert pairs
    for pair in pairs:
        n = pair.shared_prefix_tokens
        assert pair.chosen.text != pair.rejected.text
        assert pair.chosen.tokens[:n] == pair.rejected.tokens[:n]
        assert n == record_.prefix_tokens[pair.ancestor]
        shared = set(ancestors(record_.parents, pair.chosen.node_id)) & set(
            ancestors(record_.parents, pair.rejected.node_id)
        )
        assert pair.ancestor in shared
        assert all(record_.prefix_tokens[a] <= n for a in shared)


def test_pairs_from_a_search_in_memory(searched):
    backend, result, _ = searched
    rec = record_from_search(
        result,
        question_id="q",
        question="add",
        prompt="P",
        reference=None,
        source="test",
        detokenize=backend.detokenize,
    )
    assert len(rec.paths) == len(result.rollouts)
    pairs = make_pairs(rec)
    _check_pairs(pairs, rec)
    for pair in pairs:
        rank = lambda p: (p.stop in FINISHED_STOPS, p.value)  # noqa: E731
        assert rank(pair.chosen) > rank(pair.rejected)
    assert any(p.shared_prefix_tokens > 0 for p in pairs)  # siblings deeper than the root exist
    graded = make_pairs(rec, grade=lambda text: "five" in text.rsplit("<Output>", 1)[-1])
    _check_pairs(graded, rec)
    assert all("five" in p.chosen.text.rsplit("<Output>", 1)[-1] for p in graded)


def test_a_saved_tree_gives_the_same_pairs(searched, tmp_path):
    backend, result, recorder = searched
    memory = record_from_search(
        result,
        question_id=question_id(QUESTION),
        question=QUESTION,
        prompt=QUESTION,
        reference=None,
        source="s",
        detokenize=backend.detokenize,
    )
    loaded = load_record(save(tmp_path / "t.json", result, recorder))
    assert loaded.question == QUESTION and loaded.prompt == QUESTION and loaded.source.endswith("t.json")

    # the file rounds values to 6 digits; everything else is the same
    def strip(pairs):
        return [
            {k: v for k, v in p.to_json().items() if k not in ("chosen_value", "rejected_value", "source")}
            for p in pairs
        ]

    assert strip(make_pairs(loaded)) == strip(make_pairs(memory))
    _check_pairs(make_pairs(loaded), loaded)


def test_a_saved_tree_without_rollout_texts(searched, tmp_path):
    _, result, _ = searched
    path = save(tmp_path / "t.json", result)  # no recorder: rollout texts are null
    with pytest.raises(TreeFileError, match=r"t.json: rollout 0: its 'text' was not recorded"):
        load_record(path)
    data = json.loads(path.read_text())
    data["rollouts"] = [r for r in data["rollouts"] if r["n_rollout_tokens"] == 0]
    assert data["rollouts"]  # terminal nodes: the path's text is the nodes' texts
    path.write_text(json.dumps(data))
    views = {v.id: v for v in result.root.walk()}
    for p in load_record(path).paths:
        node, text = views[p.node_id], ""
        while node.parent_id is not None:
            text, node = node.text + text, views[node.parent_id]
        assert p.text == text and p.text


def test_export_dpo_command(searched, tmp_path):
    _, result, recorder = searched
    first = save(tmp_path / "a.json", result, recorder)
    second = save(tmp_path / "b.json", result, recorder)  # the same tree twice: deduplicated
    out = tmp_path / "pairs.jsonl"
    runner = CliRunner()
    one = runner.invoke(app, ["export-dpo", str(first), "-o", str(out)])
    assert one.exit_code == 0, one.stderr
    n_one = len(out.read_text().splitlines())
    both = runner.invoke(app, ["export-dpo", str(first), str(second), "-o", str(out)])
    assert both.exit_code == 0 and len(out.read_text().splitlines()) == n_one > 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(set(r) >= FIELDS and r["chosen"] != r["rejected"] for r in rows)
    assert [r["chosen_value"] - r["rejected_value"] for r in rows] == sorted(
        (r["chosen_value"] - r["rejected_value"] for r in rows), reverse=True
    )
    capped = runner.invoke(app, ["export-dpo", str(first), str(second), "--max-pairs-per-question", "2"])
    assert capped.exit_code == 0 and len(capped.stdout.splitlines()) == 2  # stdout without -o
    assert "2 pairs from 2 trees" in capped.stderr
    bad = runner.invoke(app, ["export-dpo", str(tmp_path / "missing.json")])
    assert bad.exit_code == 2 and "missing.json: no such file" in bad.stderr
    (tmp_path / "other.json").write_text('{"format": "something"}')
    bad = runner.invoke(app, ["export-dpo", str(tmp_path / "other.json")])
    assert bad.exit_code == 2 and "not a marco search tree" in bad.stderr


def hand_tree_file(path, question="What?"):
    """ROOT and paths A-D written by the real writer (texts as a recorder holds them)."""
    paths = (A, B, C, D)
    rollouts = tuple(
        Rollout(p.node_id, p.tokens, (0.5,) * len(p.tokens), p.value, StopReason(p.stop), 1) for p in paths
    )
    stats = SearchStats(
        simulations=4,
        rollouts=4,
        iterations=4,
        nodes=5,
        max_depth=2,
        tokens_generated=9,
        tokens_evaluated=9,
        seconds=0.1,
    )
    result = SearchResult(A.text, A.tokens, (0.5,) * 4, (), ROOT, stats, StoppedBy.COMPLETED, A.value, True, rollouts)
    recorder = TreeRecorder()
    recorder.rollout_texts = [p.text for p in paths]
    return save_tree(path, result, question=question, model="hand", options={}, recorder=recorder)


def test_export_dpo_grades_with_a_dataset(tmp_path):
    tree = hand_tree_file(tmp_path / "t.json", question="What?")
    data = tmp_path / "d.tsv"
    data.write_text("What?\t7\n")
    result = CliRunner().invoke(app, ["export-dpo", str(tree), "--dataset", str(data)])
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["chosen_answer"], r["rejected_answer"], r["shared_prefix_tokens"]) for r in rows] == [
        ("7", "8", 2),
        ("7", None, 2),
        ("7", "8", 0),
        ("7", None, 0),
    ]
    assert {r["reference"] for r in rows} == {"7"}
    # without the dataset: ranked by (finished, value)
    result = CliRunner().invoke(app, ["export-dpo", str(tree)])
    assert len(result.stdout.splitlines()) == 6
