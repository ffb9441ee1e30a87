"""DPO pairs from a real MCTS search on the embedded model: in memory, and
through a saved tree file and ``marco export-dpo``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from marco_cli.cli import app
from marco_cli.evaluation.dpo import make_pairs, record_from_search
from marco_cli.reasoner import Reasoner, choose_model
from marco_cli.registry import load_registry
from marco_cli.settings import Mode, RuntimeSettings, SearchSettings
from saved_tree import saved_tree

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
SETTINGS = SearchSettings(simulations=2, children=2, max_tokens=48, seed=5)
FIELDS = {"prompt", "chosen", "rejected", "question_id", "shared_prefix_tokens", "chosen_value", "rejected_value", "source"}


@pytest.fixture(scope="module")
def searched():
    # one thread: quick even when other jobs hold the cores (more threads spin-wait)
    reasoner = Reasoner(choose_model(load_registry(None), "tiny").model, RuntimeSettings(n_ctx=2048, n_threads=1))
    answer = reasoner.ask(QUESTION, mode=Mode.MCTS, search=SETTINGS)
    backend = reasoner.backend
    record = record_from_search(
        answer.search, question_id="apples", question=QUESTION, prompt=reasoner.prompt_text(QUESTION),
        reference=None, source="test", detokenize=backend.detokenize,
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
        assert FIELDS <= set(data) and data["chosen"] != data["rejected"]
        assert data["chosen_value"] >= data["rejected_value"] or data["rejected"] in {
            p.text for p in record.paths if p.stop not in ("output_end", "eos")}
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


def test_export_dpo_from_a_saved_real_tree(searched, tmp_path):
    result, record, backend = searched
    tree = tmp_path / "tree.json"
    tree.write_text(json.dumps(saved_tree(result, backend.detokenize, QUESTION)), encoding="utf-8")
    out = tmp_path / "pairs.jsonl"
    cli = CliRunner().invoke(app, ["export-dpo", str(tree), "-o", str(out)])
    assert cli.exit_code == 0, cli.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    memory = [p.to_json() for p in make_pairs(record)]
    assert [(r["chosen"], r["rejected"], r["shared_prefix_tokens"]) for r in rows] == [
        (m["chosen"], m["rejected"], m["shared_prefix_tokens"]) for m in memory]
