"""The summary table of one or more ``marco eval`` results files, as Markdown.

For a run that is split over processes (one ``--offset``/``--limit`` slice
each) or not finished yet: the rows of all FILES are read together, only the
questions that every mode answered count (so each mode is compared on the
same questions), and the table is made by the same summary code as
``marco eval``'s own. Below it: every pair of modes, question by
question (an exact McNemar test), how often each of the search's picks was
right on the same trees, and how the searches stopped.

    python benchmarks/eval_summary.py a.jsonl b.jsonl --modes cot,sc,conf-vote,mcts-step --samples 6
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results_files import read_all
from marco_cli.core.errors import UsageError
from marco_cli.evaluation.evaluate import parse_modes, row_outcomes
from marco_cli.evaluation.stats import mcnemar_p, paired_counts, summarize


def complete(rows: list[dict], modes: list[str]) -> list[dict]:
    """The rows of the questions every mode has answered."""
    answered: dict[str, set[str]] = {}
    for row in rows:
        answered.setdefault(row["question_id"], set()).add(row["mode"])
    done = {q for q, seen in answered.items() if set(modes) <= seen}
    return [r for r in rows if r["question_id"] in done and r["mode"] in modes]


def table(rows: list[dict], modes: list[str], samples: int) -> list[str]:
    voting = {m.name for m in parse_modes(",".join(modes)) if m.votes}
    outcomes = row_outcomes(rows)
    ks = {m: samples if m in voting else 1 for m in modes}
    lines = [
        "| mode | n | k | acc % | 95% CI | test@k % | tokens/q | s/q | acc/1k tok | Δ vs " + modes[0] + " |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summarize(outcomes, modes, ks):
        diff = "" if s.diff is None else f"{100 * s.diff:+.1f} pp"
        lines.append(
            f"| {s.mode} | {s.questions} | {s.k} | {100 * s.accuracy:.1f} | "
            f"{100 * s.ci_low:.1f}-{100 * s.ci_high:.1f} | {100 * s.test_at_k:.1f} | "
            f"{s.tokens_per_question:.0f} | {s.seconds_per_question:.1f} | {s.accuracy_per_1k_tokens:.2f} | {diff} |"
        )
    return lines


def paired(rows: list[dict], modes: list[str]) -> list[str]:
    """Every later mode against every earlier one, on the same questions (exact McNemar)."""
    outcomes = row_outcomes(rows)
    lines = []
    for j, mode in enumerate(modes):
        for other in modes[:j]:
            wins, losses = paired_counts(outcomes, mode, other)
            lines.append(
                f"- {mode} vs {other}: right where {other} was wrong {wins}, "
                f"the reverse {losses} (exact McNemar p = {mcnemar_p(wins, losses):.2f})"
            )
    return lines


def searches(rows: list[dict]) -> list[str]:
    picks: dict[str, list[bool]] = {}
    stops: Counter[str] = Counter()
    for row in rows:
        if not row["mode"].startswith("mcts"):
            continue
        stops[str(row.get("stopped_by"))] += 1
        for name, pick in (row.get("picks") or {}).items():
            picks.setdefault(name, []).append(bool(pick["correct"]))
    lines = [f"- pick {name}: {sum(v)} of {len(v)} right" for name, v in picks.items()]
    if stops:
        lines.append("- stopped_by: " + ", ".join(f"{k} {v}" for k, v in sorted(stops.items())))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--modes", required=True, help="comma-separated, the baseline first (as marco eval --modes)")
    ap.add_argument("--samples", type=int, default=1, help="k of sc and conf-vote")
    args = ap.parse_args(argv)
    try:
        modes = [m.name for m in parse_modes(args.modes)]  # marco eval's own check and wording
        every = read_all(args.files)
    except UsageError as exc:  # ResultsError among them
        print(f"eval_summary: {exc}", file=sys.stderr)
        return 1
    rows = complete(every, modes)
    if not rows:
        print("eval_summary: no question has been answered by every mode yet", file=sys.stderr)
        return 1
    questions = sorted({r["question_id"] for r in rows}, key=lambda q: (q.rsplit(":", 1)[0], int(q.rsplit(":", 1)[1])))
    print(f"{len(questions)} questions: {', '.join(questions)}\n")
    print("\n".join(table(rows, modes, args.samples)))
    extra = paired(rows, modes) + searches(rows)
    if extra:
        print()
        print("\n".join(extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
