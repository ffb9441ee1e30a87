"""Early stop and the three picks, side by side on the same searches.

For each question the same seeded search runs twice in one process: with
``--early-stop`` off (every simulation) and on. It prints, per question and
in total, the tokens each search spent (sampled during the search; the
greedy finish of the most-visited path is counted apart), the ratio (the
saving), the simulations run, and what most-visited, best-value and vote
answered in the full search (one search reports all three; with
``--pick most-visited`` none of them is an estimate) against the reference.
Every search runs on a freshly loaded model: llama.cpp's results depend a
little on what the KV cache held before (cell placement changes the float
sums), so two searches in one loaded model are not comparable token for
token. Token counts are then deterministic for a given model, build and
seed; no timing is involved.

    python benchmarks/bench_search_stop.py --data mgsm_en.tsv             # embedded model, questions 1-5
    python benchmarks/bench_search_stop.py --data mgsm_en.tsv -m PATH.gguf --first 1 --count 20

Results go to stdout as Markdown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marco_cli.core.settings import Mode, Pick, RuntimeSettings, SearchSettings
from marco_cli.evaluation.answers import extract_answer, is_correct
from marco_cli.evaluation.datasets import load_dataset
from marco_cli.models.registry import ResolvedModel, load_registry, resolve
from marco_cli.reasoner import Reasoner
from marco_cli.search import SearchResult


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default=None, help="model name or .gguf path [embedded model]")
    parser.add_argument("--data", type=Path, required=True, help="MGSM/GSM8K-style .tsv or .jsonl file")
    parser.add_argument("--first", type=int, default=1, help="first question (1-based)")
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--simulations", type=int, default=8)
    parser.add_argument("--children", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--early-stop", type=float, default=0.75)
    parser.add_argument("--early-stop-min", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    registry = load_registry(None)
    model = resolve(registry, args.model or registry.fallback or registry.default)
    runtime = RuntimeSettings(n_threads=args.threads)
    problems = load_dataset(args.data)[args.first - 1 : args.first - 1 + args.count]
    full = SearchSettings(
        simulations=args.simulations,
        children=args.children,
        max_tokens=args.max_tokens,
        seed=args.seed,
        early_stop=None,
        pick=Pick.MOST_VISITED,
    )
    early = full.with_(early_stop=args.early_stop, early_stop_min=args.early_stop_min)

    print(
        f"model {model.label}; {args.data.name} questions {args.first}-{args.first + len(problems) - 1}; "
        f"{args.simulations} simulations x {args.children} children, {args.max_tokens} tokens, seed {args.seed}; "
        f"early stop {args.early_stop} after {args.early_stop_min}\n"
    )
    print(
        "| question | tokens full | tokens early | early/full | sims early | same answer | "
        "most-visited | best-value | vote | reference |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    totals = {"full": 0, "early": 0}
    right = {p: 0 for p in Pick}
    same = 0
    for problem in problems:
        a = _search(model, runtime, problem.question, full)
        b = _search(model, runtime, problem.question, early)
        spent_a = a.stats.tokens_generated - a.stats.finish_tokens
        spent_b = b.stats.tokens_generated - b.stats.finish_tokens
        totals["full"] += spent_a
        totals["early"] += spent_b
        answers = {c.pick: extract_answer(c.text) for c in a.picks}
        for pick, value in answers.items():
            right[pick] += is_correct(value, problem.reference)
        agree = extract_answer(a.answer_text) == extract_answer(b.answer_text)
        same += agree
        ratio = spent_b / spent_a if spent_a else 0.0
        print(
            f"| {problem.id} | {spent_a} | {spent_b} | {ratio:.2f} | "
            f"{b.stats.simulations} ({b.stopped_by.value}) | {'yes' if agree else 'no'} | "
            f"{answers[Pick.MOST_VISITED]} | {answers[Pick.BEST_VALUE]} | {answers[Pick.VOTE]} | {problem.reference} |"
        )
    n = len(problems)
    ratio = totals["early"] / totals["full"] if totals["full"] else 0.0
    print(
        f"| **total** | {totals['full']} | {totals['early']} | **{ratio:.2f}** | | {same}/{n} | "
        f"{right[Pick.MOST_VISITED]}/{n} right | {right[Pick.BEST_VALUE]}/{n} right | {right[Pick.VOTE]}/{n} right | |"
    )


def _search(model: ResolvedModel, runtime: RuntimeSettings, question: str, settings: SearchSettings) -> SearchResult:
    reasoner = Reasoner(model, runtime)
    try:
        result = reasoner.ask(question, mode=Mode.MCTS, search=settings).search
    finally:
        reasoner.close()
    assert result is not None
    return result


if __name__ == "__main__":
    main()
