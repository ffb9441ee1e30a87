"""llama-server's prompt cache (``cache_prompt``): exactness against speed.

One process, one llama-server (the binary ``.ci/build-llama-server`` caches
for the installed llama-cpp-python, or ``--server PATH``), the embedded
SmolLM2, server settings as in the tests (tests/llama_server.py). Side by side:

1. exactness: a 150-token chain of thought at temperature 0, locally (the
   in-process engine), then on the server with the cache off, twice, and
   with the cache on, twice (the second run finds its prompt in the cache):
   tokens equal to the local run, and the largest confidence difference;
2. repeatability and speed: the same seeded MCTS search run with the cache
   off and on, alternating, ``--repeats`` times each: wall time, prompt
   tokens the server evaluated (its /metrics), and whether every run's tree
   values equal the first run's of that setting.

    python benchmarks/bench_remote_cache.py                # 3 repeats
    python benchmarks/bench_remote_cache.py --repeats 5 --simulations 16

Results go to stdout as Markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

os.environ.setdefault("MARCO_THREADS", "1")

from llama_server import LlamaServer, cached_binary  # noqa: E402

from marco_cli.core.settings import GenerationSettings, Mode, RuntimeSettings, SearchSettings  # noqa: E402
from marco_cli.models.registry import load_registry, parse_registry, resolve  # noqa: E402
from marco_cli.reasoner import Reasoner  # noqa: E402

QUESTION = "A shop sells pens at 3 dollars each. Anna buys 7 pens and pays with a 50 dollar note. How much change does she get?"


def remote(url: str, cache: bool, concurrency: int) -> Reasoner:
    text = (
        f'[models.r]\nbase_url = "{url}"\nconcurrency = {concurrency}\ncache_prompt = {str(cache).lower()}\n'
        'stop = ["<|im_end|>", "<|endoftext|>"]\n'
    )
    return Reasoner(resolve(parse_registry(text, Path("bench.toml")), "r"))


def cot(reasoner: Reasoner, max_tokens: int):
    try:
        return reasoner.ask(
            QUESTION, mode=Mode.COT, generation=GenerationSettings(max_tokens=max_tokens, temperature=0.0)
        )
    finally:
        reasoner.close()


def tree_values(result) -> list[tuple[int, int, float]]:
    return [(n.id, n.visits, n.mean_value) for n in result.root.walk()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", type=Path, default=None, help="llama-server binary (default: the CI cache's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--simulations", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--cot-tokens", type=int, default=150)
    args = parser.parse_args()
    binary = args.server or cached_binary()
    if not binary.exists():
        sys.exit(f"no llama-server at {binary}: run .ci/build-llama-server first, or pass --server")
    model = resolve(load_registry(), "tiny").path  # the embedded SmolLM2, as the local run below
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_remote_cache.server.log"
    server = LlamaServer(binary, model, log, slots=args.concurrency)
    try:
        print(f"llama-server {binary} · {model.name} · {args.concurrency} slots, 1 thread\n")
        # -- 1. exactness ---------------------------------------------------
        local = Reasoner(resolve(load_registry(), "tiny"), RuntimeSettings(n_threads=1))
        base = cot(local, args.cot_tokens)
        print(f"### Chain of thought, {len(base.tokens)} tokens at temperature 0, against the local engine\n")
        print("| run | tokens equal | first differing token | max abs confidence diff |")
        print("|---|---|---|---|")
        for label, cache in (
            ("cache off, 1st", False),
            ("cache off, 2nd", False),
            ("cache on, 1st", True),
            ("cache on, 2nd (prompt cached)", True),
        ):
            got = cot(remote(server.url, cache, args.concurrency), args.cot_tokens)
            first = next((i for i, (a, b) in enumerate(zip(base.tokens, got.tokens)) if a != b), None)
            if first is None and len(base.tokens) != len(got.tokens):
                first = min(len(base.tokens), len(got.tokens))
            n = first if first is not None else len(base.tokens)
            diff = max((abs(a - b) for a, b in zip(base.confidences[:n], got.confidences[:n])), default=0.0)
            print(
                f"| {label} | {'yes' if got.tokens == base.tokens else 'no'} | {'-' if first is None else first} | {diff:.2e} |"
            )
        # -- 2. repeatability and speed --------------------------------------
        settings = SearchSettings(simulations=args.simulations, children=2, max_tokens=96, seed=7)
        runs: dict[bool, list[tuple[float, float, list]]] = {False: [], True: []}
        for _ in range(args.repeats):
            for cache in (False, True):
                reasoner = remote(server.url, cache, args.concurrency)
                before = server.metric("prompt_tokens_total")
                started = time.perf_counter()
                try:
                    answer = reasoner.ask(QUESTION, mode=Mode.MCTS, search=settings)
                finally:
                    reasoner.close()
                wall = time.perf_counter() - started
                runs[cache].append((wall, server.metric("prompt_tokens_total") - before, tree_values(answer.search)))
        print(
            f"\n### MCTS, {args.simulations} simulations x 2 children, seed 7, {args.repeats} runs each, alternating\n"
        )
        print(
            "| cache_prompt | wall s (median) | prompt tokens evaluated (median) | trees equal to the first run | vs cache off |"
        )
        print("|---|---|---|---|---|")
        off = statistics.median(w for w, _, _ in runs[False])
        for cache in (False, True):
            walls = [w for w, _, _ in runs[cache]]
            prompt = statistics.median(p for _, p, _ in runs[cache])
            same = sum(1 for _, _, t in runs[cache] if t == runs[cache][0][2])
            print(
                f"| {'on' if cache else 'off'} | {statistics.median(walls):.2f} | {prompt:.0f} | {same}/{len(walls)} "
                f"| {off / statistics.median(walls):.2f}x |"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
