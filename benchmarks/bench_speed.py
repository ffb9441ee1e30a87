"""Speed by default: threads, batches and the first answer, side by side.

One process, three parts, ratios printed as Markdown tables (stdout):

1. Threads: marco's default (libgomp waiting passively; the thread governor
   for decodes of several streams) against a fixed single thread, on the
   same decode of one greedy stream and of three sampled streams,
   first as the machine is, then with one core kept busy by a bounded busy
   loop this script starts and stops itself (a child process that also ends
   on its own after ``--busy-limit`` seconds).
2. Search vs plain decode: tokens/s of a default MCTS search (all its
   batching) against a plain single-stream decode of the same model, and the
   rows its llama.cpp decodes held on average (how full its batches were).
3. Default ``marco ask`` (MCTS) wall time against ``--mode cot`` for the same
   question, with the model load and the time to the first live-tree event.

Parts 2 and 3 run on the embedded SmolLM2-135M and on the Qwen2 0.5B proxy
(``benchmarks/qwen_proxy.py`` assembles it; ``--proxy PATH`` or skip it with
``--proxy none``), the proxy as the MGSM runs use it: a Marco-o1 stand-in,
in Marco-o1's reasoning format with the stand-in system prompt.

    python benchmarks/bench_speed.py
    python benchmarks/bench_speed.py --quick     # shorter decodes, 4 simulations

The machine's load average is printed with every table: on a shared machine
only ratios measured in one run mean anything.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.qwen_proxy import FILE_NAME, STAND_IN_SYSTEM, default_cache, write_registry
from marco_cli.backends.base import Request, Sampling
from marco_cli.backends.llama import LlamaBackend
from marco_cli.core.machine import physical_cores, usable_cpus
from marco_cli.core.settings import GenerationSettings, Mode, RuntimeSettings, SearchSettings
from marco_cli.models.registry import ResolvedModel, load_registry, resolve
from marco_cli.reasoner import Reasoner
from marco_cli.search.batching import auto_leaves
from marco_cli.search.events import NodeCreated

QUESTION = "How many r's are in strawberry?"  # the README's first command
STORY = "Write a long story about a cat who learns to sail. Use many details."


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f})"


def embedded() -> Path:
    return resolve(load_registry(None), "tiny").path


def proxy_path(arg: str | None) -> Path | None:
    if arg == "none":
        return None
    if arg:
        return Path(arg)
    return default_cache() / FILE_NAME


# -- the busy core ---------------------------------------------------------------


def _spin(stop: mp.synchronize.Event, limit: float) -> None:
    end = time.monotonic() + limit
    x = 0
    while not stop.is_set() and time.monotonic() < end:
        for _ in range(20_000):
            x += 1


class BusyCore:
    """One process spinning on a core for the ``with`` block (at most ``limit`` s)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.stop = mp.Event()
        self.proc = mp.Process(target=_spin, args=(self.stop, limit), daemon=True)

    def __enter__(self) -> BusyCore:
        self.proc.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


# -- measurements --------------------------------------------------------------


def chat(backend: LlamaBackend, text: str) -> list[int]:
    return backend.tokenize(f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n")


def plain_decode(backend: LlamaBackend, tokens: int, rows: int = 1) -> tuple[float, int]:
    """Seconds for ``tokens`` tokens in each of ``rows`` streams decoded together
    (greedy for one stream, seeded samples for several; prompt excluded)."""
    root = backend.root(chat(backend, STORY))
    sampling = [Sampling(temperature=0.0)] if rows == 1 else [Sampling(temperature=0.8, seed=s) for s in range(rows)]
    try:
        started = time.perf_counter()
        conts = backend.extend([Request(root, max_tokens=tokens, sampling=s, keep=False) for s in sampling])
        return time.perf_counter() - started, sum(len(c.tokens) for c in conts)
    finally:
        backend.release(root)


def best_of(repeat: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(repeat))


def threads_part(path: Path, tokens: int, repeat: int, busy_limit: float) -> None:
    auto = LlamaBackend.load(path, RuntimeSettings(n_ctx=2048), name="auto")
    one = LlamaBackend.load(path, RuntimeSettings(n_ctx=2048, n_threads=1), name="one")
    gov = auto.engine.kv.threads
    print(f"\n### Threads: default vs --threads 1 ({path.name}, {tokens} tokens a stream, best of {repeat})\n")
    print(
        f"{usable_cpus()} CPUs, {physical_cores()} physical cores; default candidates {gov.choices}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')}\n"
    )
    print(
        "| machine | default s | 1 thread s | default / 1 thread | default's count at the end | tries / switches | load |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, busy, rows in (
        ("as it is, 1 stream", False, 1),
        ("as it is, 3 streams", False, 3),
        ("one core kept busy, 1 stream", True, 1),
        ("one core kept busy, 3 streams", True, 3),
    ):
        a, o = [], []
        with BusyCore(busy_limit) if busy else nullcontext():
            for _ in range(repeat):  # interleaved, so drifting load hits both
                a.append(plain_decode(auto, tokens, rows)[0])
                o.append(plain_decode(one, tokens, rows)[0])
        print(
            f"| {label} | {min(a):.2f} | {min(o):.2f} | **{min(a) / min(o):.2f}x** | {gov.current} | "
            f"{gov.tries} / {gov.switches} | {os.getloadavg()[0]:.1f} |",
            flush=True,
        )
    auto.close()
    one.close()


class FirstEvents:
    """Times of the first live-tree events (root, first child) after ``t0``."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.root: float | None = None
        self.child: float | None = None

    def on_event(self, event: object) -> None:
        if isinstance(event, NodeCreated):
            now = time.perf_counter() - self.t0
            if event.parent_id is None and self.root is None:
                self.root = now
            elif event.parent_id is not None and self.child is None:
                self.child = now


def model_part(
    name: str, model: ResolvedModel, tokens: int, simulations: int | None, system: str | None = None
) -> None:
    started = time.perf_counter()
    reasoner = Reasoner(model, RuntimeSettings())
    backend = reasoner.backend
    load_s = time.perf_counter() - started
    gov = backend.engine.kv.threads
    plain_s, plain_n = plain_decode(backend, tokens)
    plain_tps = plain_n / plain_s

    search = SearchSettings() if simulations is None else SearchSettings(simulations=simulations)
    cot_t0 = time.perf_counter()
    generation = GenerationSettings(system=system)
    cot = reasoner.ask(QUESTION, mode=Mode.COT, generation=generation)
    cot_s = time.perf_counter() - cot_t0
    first = FirstEvents(time.perf_counter())
    counters = backend.stats
    evaluated, decodes = counters.evaluated_tokens, counters.decode_calls
    mcts = reasoner.ask(QUESTION, mode=Mode.MCTS, generation=generation, search=search, observer=first)
    mcts_s = time.perf_counter() - first.t0
    # Rows per llama_decode in the search: how full its batches were.
    rows = (counters.evaluated_tokens - evaluated) / max(1, counters.decode_calls - decodes)
    stats = mcts.search.stats
    search_tps = stats.tokens_generated / stats.seconds
    leaves = search.leaves_per_iteration or auto_leaves(backend.info)
    print(
        f"| {name} | {load_s:.2f} | {plain_tps:.1f} | {search_tps:.1f} | **{search_tps / plain_tps:.2f}x** | "
        f"{cot_s:.1f} ({cot.generated_tokens} tok) | {mcts_s:.1f} ({stats.tokens_generated} tok, {stats.rollouts} rollouts) | "
        f"**{mcts_s / cot_s:.1f}x** | {first.root:.2f} / {first.child:.2f} | {leaves} | {rows:.2f} | {gov.current} | "
        f"{os.getloadavg()[0]:.1f} |",
        flush=True,
    )
    reasoner.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--proxy", help="Qwen2 0.5B proxy GGUF ('none' to skip it)")
    ap.add_argument("--tokens", type=int, default=128, help="tokens per plain decode")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of each thread measurement")
    ap.add_argument("--simulations", type=int, help="MCTS simulations (default: marco's default)")
    ap.add_argument("--busy-limit", type=float, default=600.0, help="the busy loop ends by itself after this")
    ap.add_argument("--quick", action="store_true", help="64-token decodes, 2 repeats, 4 simulations")
    ap.add_argument("--skip-threads", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.tokens, args.repeat, args.simulations = 64, 2, args.simulations or 4
    print(f"# bench_speed ({load()}, python {sys.version.split()[0]}, pid {os.getpid()})")
    smol = embedded()
    if not args.skip_threads:
        threads_part(smol, args.tokens, args.repeat, args.busy_limit)
    sims = "default" if args.simulations is None else str(args.simulations)
    print(
        f"\n### Search vs plain decode, MCTS vs CoT wall (question: {QUESTION!r}, {sims} simulations, default threads)\n"
    )
    print(
        "| model | load s | plain tok/s | search tok/s | search / plain | CoT wall s | MCTS wall s | MCTS / CoT | first event: root / first child s | leaves | rows per decode | threads at end | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    model_part(
        "SmolLM2-135M Q4_1 (embedded)", resolve(load_registry(None), "smollm2-135m"), args.tokens, args.simulations
    )
    proxy = proxy_path(args.proxy)
    if proxy is not None:
        if proxy.is_file():
            # As the MGSM runs use it: a Marco-o1 stand-in (its reasoning format and system prompt).
            stand_in = resolve(load_registry(write_registry(proxy, proxy.parent)), "qwen-proxy")
            model_part("Qwen2.5-0.5B Q4_K_M (proxy)", stand_in, args.tokens, args.simulations, STAND_IN_SYSTEM)
        else:
            print(f"\n(proxy not found at {proxy}: run benchmarks/qwen_proxy.py or pass --proxy)")
    print(f"\n{load()} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
