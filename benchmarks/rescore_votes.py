"""Re-score the sampled traces of a ``marco eval`` results file offline: every
confidence score x kept share of conf-vote, and plain majority, on the same
samples, without generating anything. This is how ``--conf-score`` and
``--conf-keep`` are chosen on a tuning slice before a held-out run.

    python benchmarks/rescore_votes.py results.jsonl [more.jsonl ...] [--mode sc]

Several files (a run split over processes) are read as one; a question
found in more than one counts once, from the last file that has it.

Reads the ``traces`` of each question's rows of that mode (``sc`` or
``conf-vote``; the samples are the same) and prints a Markdown table. Given an
MCTS mode (``--mode mcts-step``) it compares the tree's picks instead, from
the finished rollouts each row records: the row's own answer (the pick it ran
with), the best-value rollout, and a value-weighted vote over the rollouts'
answers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results_files import ResultsError, last_per_question, read_all
from marco_cli.evaluation.stats import wilson_interval
from marco_cli.evaluation.voting import ConfScore, Trace, vote

KEEPS = (1.0, 0.9, 0.75, 0.5, 0.34, 0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--mode", default="sc", help="rows whose traces to re-score [sc]")
    args = parser.parse_args(argv)
    try:
        rows = last_per_question(read_all(args.results), args.mode)
    except ResultsError as exc:
        print(f"rescore_votes: error: {exc}", file=sys.stderr)
        return 1
    where = ", ".join(map(str, args.results))
    if args.mode.startswith("mcts"):
        return picks(rows, args.mode, where)
    questions: dict[str, tuple[str | None, list[Trace]]] = {}
    for row in rows:
        if row.get("traces"):
            questions[row["question_id"]] = (row["reference"], [Trace.from_json(t) for t in row["traces"]])
    if not questions:
        print(f"rescore_votes: error: no {args.mode} rows with traces in {where}", file=sys.stderr)
        return 1
    n = len(questions)
    ks = sorted({len(traces) for _, traces in questions.values()})
    print(f"{n} questions, k = {', '.join(map(str, ks))}\n")
    print("| vote | keep | acc % | 95% CI | correct |")
    print("|---|---|---|---|---|")
    variants = [("majority", None, 1.0)] + [(s.value, s, keep) for s in ConfScore for keep in KEEPS]
    for name, score, keep in variants:
        right = sum(vote(traces, weight=score, keep=keep).prediction == ref for ref, traces in questions.values())
        low, high = wilson_interval(right / n, n)
        print(f"| {name} | {keep:g} | {100 * right / n:.1f} | {100 * low:.1f}-{100 * high:.1f} | {right}/{n} |")
    oracle = sum(any(t.prediction == ref for t in traces) for ref, traces in questions.values())
    print(f"\nany sample right (test@k): {oracle}/{n}")
    return 0


def picks(rows: list[dict], mode: str, where: str) -> int:
    rows = [r for r in rows if "rollouts" in r]
    if not rows:
        print(f"rescore_votes: error: no {mode} rows with rollouts in {where}", file=sys.stderr)
        return 1
    n = len(rows)
    count = {"as run (--pick)": 0, "best-value": 0, "vote (value-weighted)": 0}
    for row in rows:
        ref, finished = row["reference"], row["rollouts"]
        count["as run (--pick)"] += bool(row["correct"])
        best = max(finished, key=lambda r: r["value"], default=None)
        count["best-value"] += best is not None and best["prediction"] == ref
        traces = [Trace(r["prediction"], r["tokens"], r["value"], r["value"], r["value"]) for r in finished]
        count["vote (value-weighted)"] += vote(traces, weight=ConfScore.MEAN).prediction == ref
    print(f"{n} questions of {mode}\n")
    print("| pick | acc % | 95% CI | correct |")
    print("|---|---|---|---|")
    for name, right in count.items():
        low, high = wilson_interval(right / n, n)
        print(f"| {name} | {100 * right / n:.1f} | {100 * low:.1f}-{100 * high:.1f} | {right}/{n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
