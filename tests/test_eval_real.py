"""`marco eval` end to end on the real embedded model (SmolLM2-135M) with a
3-question dataset the test writes: the table's shape, one JSON line per
answer, resume after a shorter run, and --dpo-out. Tiny settings: the
machine is shared."""

from __future__ import annotations

import json

import eval_table
import pytest
from typer.testing import CliRunner

from marco_cli.cli import app

pytestmark = pytest.mark.model

# --threads 1: quick even when other jobs hold the cores (more threads spin-wait)
SMALL = ["-m", "tiny", "--max-tokens", "48", "--simulations", "2", "--children", "2", "--ctx", "2048", "--threads", "1"]
QUESTIONS = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
    ("What is 2 plus 2?", "4"),
    ("A box has 10 pens and 3 are taken out. How many pens are left?", "7"),
]
ROW_FIELDS = {
    "question_id",
    "mode",
    "sample",
    "seed",
    "question",
    "reference",
    "prediction",
    "correct",
    "answer",
    "text",
    "tokens",
    "seconds",
    "model",
    "settings",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """First run: 2 questions x (cot, mcts-step); second: --resume --limit 3."""
    tmp = tmp_path_factory.mktemp("eval")
    data = tmp / "tiny.tsv"
    data.write_text("".join(f"{q}\t{a}\n" for q, a in QUESTIONS), encoding="utf-8")
    out, pairs = tmp / "results.jsonl", tmp / "pairs.jsonl"
    base = ["eval", str(data), "--modes", "cot,mcts-step", "--out", str(out), "--dpo-out", str(pairs), *SMALL]
    runner = CliRunner()
    first = runner.invoke(app, [*base, "--limit", "2"])
    rows_first = out.read_text(encoding="utf-8").splitlines()
    second = runner.invoke(app, [*base, "--limit", "3", "--resume", "--json"])
    return first, rows_first, second, out, pairs


def test_table_shape(runs):
    first = runs[0]
    assert first.exit_code == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("tiny.tsv · smollm2-135m")
    assert eval_table.header(first.stdout) == eval_table.COLUMNS
    body = eval_table.body(first.stdout)
    assert [row[0] for row in body] == ["cot", "mcts-step"]
    assert all(row[1] == "2" and row[2] == "1" for row in body)
    assert body[0][9] == "" and body[1][9].endswith(" pp")
    assert "\x1b[" not in first.stdout  # not a terminal: no colour


def test_one_json_line_per_answer(runs):
    rows = [json.loads(line) for line in runs[1]]
    assert [(r["question_id"], r["mode"]) for r in rows] == [
        ("tiny:1", "cot"),
        ("tiny:1", "mcts-step"),
        ("tiny:2", "cot"),
        ("tiny:2", "mcts-step"),
    ]
    for row in rows:
        assert set(row) >= ROW_FIELDS
        assert row["model"] == "smollm2-135m:Q4_1" and row["reference"] in ("7", "4")
        assert row["tokens"] > 0 and isinstance(row["correct"], bool)
    assert 0 < rows[0]["tokens"] <= 48  # cot: one answer's tokens
    assert "value" in rows[1]  # mcts: the chosen path's eq. 2 value
    # every pick's answer from the same tree, and each finished rollout's answer and value
    assert set(rows[1]["picks"]) == {"most-visited", "best-value", "vote"}
    assert all(isinstance(p["correct"], bool) for p in rows[1]["picks"].values())
    assert all(
        {"prediction", "key", "value", "stop", "tokens", "iteration", "simulations", "searched_tokens"} <= set(r)
        for r in rows[1]["rollouts"]
    )


def test_resume_runs_only_the_new_question(runs):
    _, rows_first, second, out, _ = runs
    assert second.exit_code == 0, second.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [json.loads(line) for line in rows_first] == rows[:4]  # untouched
    assert [(r["question_id"], r["mode"]) for r in rows[4:]] == [("tiny:3", "cot"), ("tiny:3", "mcts-step")]
    summary = json.loads(second.stdout)
    assert summary["new_answers"] == 2 and not summary["interrupted"]
    assert [(m["mode"], m["questions"]) for m in summary["modes"]] == [("cot", 3), ("mcts-step", 3)]


def test_dpo_out_lines_are_valid_pairs(runs):
    pairs = runs[4]
    for line in pairs.read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        assert pair["chosen"] != pair["rejected"] and pair["prompt"].endswith("assistant\n")
        assert pair["question_id"].startswith("tiny:") and pair["source"].startswith("tiny.tsv:mcts-step")
        assert pair["chosen_answer"] == pair["reference"] != pair["rejected_answer"]  # graded by the answer


@pytest.fixture(scope="module")
def votes(tmp_path_factory):
    """cot, sc and conf-vote on one question, k=3, run twice with the same seed."""
    tmp = tmp_path_factory.mktemp("votes")
    data = tmp / "tiny.tsv"
    data.write_text("".join(f"{q}\t{a}\n" for q, a in QUESTIONS), encoding="utf-8")
    runner = CliRunner()
    results = []
    for name in ("a.jsonl", "b.jsonl"):
        out = tmp / name
        run = runner.invoke(
            app,
            [
                "eval",
                str(data),
                "--modes",
                "cot,sc,conf-vote",
                "--samples",
                "3",
                "--offset",
                "1",
                "--limit",
                "1",
                "--conf-keep",
                "0.6",
                "--out",
                str(out),
                "--json",
                *SMALL,
            ],
        )
        results.append((run, [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]))
    return results


def test_sc_and_conf_vote_rows_end_to_end(votes):
    run, rows = votes[0]
    assert run.exit_code == 0, run.stderr
    assert [(r["question_id"], r["mode"], r["sample"]) for r in rows] == [
        ("tiny:2", "cot", 0),
        ("tiny:2", "sc", 0),
        ("tiny:2", "conf-vote", 0),
    ]
    cot, sc, conf = rows
    for row in (sc, conf):
        assert set(row) >= ROW_FIELDS and row["k"] == 3 and len(row["traces"]) == 3
        assert row["tokens"] == sum(t["tokens"] for t in row["traces"]) > 0
        assert all(0 < t["mean"] <= 1 and 0 < t["window"] <= t["mean"] + 1e-9 for t in row["traces"])
    assert sc["traces"] == conf["traces"]  # one batch of samples, scored twice
    assert sc["tokens"] <= 3 * 48 and 0 < cot["tokens"] <= 48
    answers = [t["prediction"] for t in sc["traces"] if t["prediction"] is not None]
    if answers:  # the majority answer (ties: the earliest)
        assert sc["prediction"] == max(answers, key=answers.count)
    else:
        assert sc["prediction"] is None
    assert conf["voters"] <= 2  # --conf-keep 0.6 of 3 (ceil 1.8): the two most confident traces
    summary = json.loads(run.stdout)
    assert [(m["mode"], m["k"], m["questions"]) for m in summary["modes"]] == [
        ("cot", 1, 1),
        ("sc", 3, 1),
        ("conf-vote", 3, 1),
    ]
    assert summary["modes"][1]["tokens_per_question"] == sc["tokens"]


def test_voting_samples_are_seeded(votes):
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(votes[0][1]) == strip(votes[1][1])
