"""benchmarks/eval_summary.py: a split or unfinished eval run read back as one table."""

from __future__ import annotations

import json

from benchmarks import eval_summary


def row(q: int, mode: str, correct: bool, tokens: int, **extra) -> dict:
    return {
        "question_id": f"mgsm_en:{q}",
        "mode": mode,
        "sample": 0,
        "question": f"question {q}",
        "correct": correct,
        "tokens": tokens,
        "seconds": 1.0,
        "settings": "abc",
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
    assert "- mcts-step vs cot: right where cot was wrong 1, the reverse 1 (exact McNemar p = 1.00)" in out


def test_nothing_complete_or_a_broken_line_is_one_line(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(row(1, "cot", True, 10)) + "\n")
    assert eval_summary.main([str(path), "--modes", "cot,sc"]) == 1
    assert capsys.readouterr().err == "eval_summary: no question has been answered by every mode yet\n"


def test_rescore_votes_reads_a_split_run_once_per_question(tmp_path, capsys):
    from benchmarks import rescore_votes

    def traces(*answers):  # (prediction, mean confidence)
        return [{"prediction": p, "tokens": 10, "mean": m, "tail": m, "window": m} for p, m in answers]

    a = row(1, "sc", False, 60, reference="5", traces=traces(("4", 0.5), ("4", 0.5), ("5", 0.99)))
    b = row(2, "sc", True, 60, reference="7", traces=traces(("7", 0.9), ("7", 0.9), ("8", 0.2)))
    again = row(2, "sc", True, 60, reference="7", traces=traces(("7", 0.9), ("7", 0.9), ("8", 0.2)))
    paths = []
    for name, rows in (("a.jsonl", [a, row(1, "cot", False, 20)]), ("b.jsonl", [b]), ("c.jsonl", [again])):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(str(path))
    assert rescore_votes.main(paths) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 questions, k = 3\n")
    assert "| majority | 1 | 50.0 |" in out  # 4 beats 5 two to one on question 1
    assert "| mean | 0.34 | 100.0 |" in out  # only the most confident votes: 5, and 7
    assert "any sample right (test@k): 2/2" in out
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    assert rescore_votes.main([str(broken)]) == 1
    assert capsys.readouterr().err == (
        f"rescore_votes: error: {broken}:1: not a JSON line; is this a marco eval results file?\n"
    )
