"""Self-consistency samples: k chains of thought in one batched pass
(``Reasoner.sample``, what ``marco eval --modes sc`` runs) against the same k
answered one after another, side by side in one process, alternating so both
see the same machine load.

    python benchmarks/bench_sc.py                      # embedded model, k=6
    python benchmarks/bench_sc.py -m MODEL.gguf -k 8 --max-tokens 256

Prints a Markdown table: wall seconds, tokens, tokens/s and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marco_cli.core.settings import GenerationSettings, Mode, RuntimeSettings
from marco_cli.models.registry import load_registry
from marco_cli.reasoner import Reasoner, choose_model

QUESTION = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for "
    "her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh "
    "duck egg. How much in dollars does she make every day at the farmers' market?"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--model", default="tiny")
    parser.add_argument("-k", type=int, default=6, help="samples per question")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--rounds", type=int, default=2, help="batched/sequential pairs, alternating")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    choice = choose_model(load_registry(None), args.model)
    reasoner = Reasoner(choice.model, RuntimeSettings(n_ctx=4096, n_threads=args.threads))
    _ = reasoner.backend  # load before timing
    totals = {"batched": [0.0, 0], "sequential": [0.0, 0]}
    same = True
    for r in range(args.rounds):
        gen = GenerationSettings(temperature=args.temperature, max_tokens=args.max_tokens, seed=1000 * r)
        started = time.perf_counter()
        batch = reasoner.sample(QUESTION, args.k, gen)
        totals["batched"][0] += time.perf_counter() - started
        totals["batched"][1] += sum(a.generated_tokens for a in batch)
        started = time.perf_counter()
        one_by_one = [
            reasoner.ask(
                QUESTION,
                mode=Mode.COT,
                generation=GenerationSettings(
                    temperature=args.temperature, max_tokens=args.max_tokens, seed=gen.seed + i
                ),
            )
            for i in range(args.k)
        ]
        totals["sequential"][0] += time.perf_counter() - started
        totals["sequential"][1] += sum(a.generated_tokens for a in one_by_one)
        same = same and [a.tokens for a in batch] == [a.tokens for a in one_by_one]
    reasoner.close()
    print(
        f"{choice.model.label}, k={args.k}, max {args.max_tokens} tokens, T={args.temperature}, "
        f"{args.rounds} rounds, {args.threads} thread(s); identical samples: {'yes' if same else 'no'}\n"
    )
    print("| samples made | wall s | tokens | tok/s | wall vs sequential |")
    print("|---|---|---|---|---|")
    seq = totals["sequential"][0]
    for name, (seconds, tokens) in totals.items():
        print(f"| {name} | {seconds:.1f} | {tokens} | {tokens / seconds:.1f} | {seconds / seq:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
