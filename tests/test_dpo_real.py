"""DPO pairs from a real MCTS search on the embedded model: in memory, and
from a tree saved by ``marco ask --save-tree`` through ``marco export-dpo``."""

from __future__ import annotations

import json

import pytest
from test_dpo import FIELDS
from typer.testing import CliRunner

from marco_cli.cli import app
from marco_cli.core.settings import Mode, RuntimeSettings, SearchSettings
from marco_cli.evaluation.dpo import make_pairs, record_from_search
from marco_cli.models.registry import load_registry
from marco_cli.reasoner import Reasoner, choose_model
from marco_cli.treefile.io import load_tree

pytestmark = pytest.mark.model

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
SETTINGS = SearchSettings(simulations=2, children=2, max_tokens=48, seed=5)


@pytest.fixture(scope="module")
def searched():
    # one thread: quick even when other jobs hold the cores (more threads spin-wait)
    reasoner = Reasoner(choose_model(load_registry(None), "tiny").model, RuntimeSettings(n_ctx=2048, n_threads=1))
    answer = reasoner.ask(QUESTION, mode=Mode.MCTS, search=SETTINGS)
    backend = reasoner.backend
    record = record_from_search(
        answer.search,
        question_id="apples",
        question=QUESTION,
        prompt=reasoner.prompt_text(QUESTION),
        reference=None,
        source="test",
        detokenize=backend.detokenize,
    )
    yield answer.search, record, backend
    reasoner.close()


def test_pairs_share_a_prefix_consistent_with_the_tree(searched):
    result, record, backend = searched
    pairs = make_pairs(record)
    assert len(record.paths) == len(result.rollouts) >= 2
    assert pairs
    views = {v.id: v for v in result.root.walk()}
    for pair in pairs:
        data = pair.to_json()
        assert set(data) >= FIELDS and data["chosen"] != data["rejected"]
        assert data["chosen_value"] >= data["rejected_value"] or data["rejected"] in {
            p.text for p in record.paths if p.stop not in ("output_end", "eos")
        }
        n = pair.shared_prefix_tokens
        assert pair.chosen.tokens[:n] == pair.rejected.tokens[:n]
        # n = the tokens of the path root -> common ancestor, node by node
        node, length = views[pair.ancestor], 0
        while node.parent_id is not None:
            length += node.n_tokens
            node = views[node.parent_id]
        assert n == length
        assert data["prompt"].startswith("<|im_start|>system") and QUESTION in data["prompt"]
        prefix = backend.detokenize(pair.chosen.tokens[:n])
        if "\ufffd" not in prefix:
            assert data["chosen"].startswith(prefix) and data["rejected"].startswith(prefix)


def test_export_dpo_from_a_tree_saved_by_ask(tmp_path):
    tree, out = tmp_path / "tree.json", tmp_path / "pairs.jsonl"
    runner = CliRunner()
    asked = runner.invoke(
        app,
        [
            "ask",
            "-m",
            "tiny",
            "--mode",
            "mcts",
            "--simulations",
            "2",
            "--children",
            "2",
            "--max-tokens",
            "48",
            "--seed",
            "5",
            "--threads",
            "1",
            "--ctx",
            "2048",
            "--save-tree",
            str(tree),
            QUESTION,
        ],
    )
    assert asked.exit_code == 0, asked.stderr
    cli = runner.invoke(app, ["export-dpo", str(tree), "-o", str(out)])
    assert cli.exit_code == 0, cli.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows and f"{len(rows)} pairs from 1 tree" in cli.stderr
    saved = load_tree(tree)
    paths = {p["text"]: p for p in saved.data["rollouts"]}
    views = {v.id: v for v in saved.root.walk()}
    for row in rows:
        assert set(row) >= FIELDS and row["chosen"] != row["rejected"] and row["prompt"] == QUESTION
        chosen, rejected = paths[row["chosen"]], paths[row["rejected"]]
        n = row["shared_prefix_tokens"]
        assert chosen["tokens"][:n] == rejected["tokens"][:n]
        node, length = views[row["ancestor_node"]], 0
        while node.parent_id is not None:
            length += node.n_tokens
            node = views[node.parent_id]
        assert n == length
