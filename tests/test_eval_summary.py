"""benchmarks/eval_summary.py: a split or unfinished eval run read back as one table."""

from __future__ import annotations

import json

from benchmarks import eval_summary


def row(q: int, mode: str, correct: bool, tokens: int, **extra) -> dict:
    return {
        "question_id": f"mgsm_en:{q}",
        "mode": mode,
        "sample": 0,
        "correct": correct,
        "tokens": tokens,
        "seconds": 1.0,
        **extra,
    }


def test_split_files_make_one_table_of_the_questions_every_mode_answered(tmp_path, capsys):
    picks = {"most-visited": {"correct": False}, "vote": {"correct": True}}
    first = [row(51, "cot", True, 100), row(51, "mcts-step", False, 900, picks=picks, stopped_by="completed")]
    second = [
        row(76, "cot", False, 300),
        row(76, "mcts-step", True, 700, picks=picks, stopped_by="early_stop"),
        row(77, "cot", True, 50),  # its search never ran: left out of every row
    ]
    paths = []
    for name, rows in (("a.jsonl", first), ("b.jsonl", second)):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(str(path))
    assert eval_summary.main([*paths, "--modes", "cot,mcts-step"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 questions: mgsm_en:51, mgsm_en:76\n")
    lines = {
        line.split("|")[1].strip(): line
        for line in out.splitlines()
        if line.startswith("| cot") or line.startswith("| mcts")
    }
    assert "| 2 | 1 | 50.0 |" in lines["cot"] and "| 200 |" in lines["cot"]
    assert "| 50.0 |" in lines["mcts-step"] and "| 800 |" in lines["mcts-step"]
    assert "- pick vote: 2 of 2 right" in out and "- stopped_by: completed 1, early_stop 1" in out


def test_nothing_complete_or_a_broken_line_is_one_line(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(row(1, "cot", True, 10)) + "\n")
    assert eval_summary.main([str(path), "--modes", "cot,sc"]) == 1
    assert capsys.readouterr().err == "eval_summary: no question has been answered by every mode yet\n"
