"""KV-cache bookkeeping for the tree engine: nodes, sequence ids, eviction, rebuild.

One llama.cpp context holds the whole search tree in a unified KV cache; each
live node owns one KV *sequence id* whose cells are the node's token path
minus its last token. That last token stays *pending* (not decoded) so that
one decode of it serves every child at once (docs/engine.md, point 2):
children are forked with ``llama_memory_seq_cp`` (cells are shared, not
copied) and the pending token is decoded once with all child ids on it.

When sequence ids or cache cells run out, least-recently-used nodes lose
their sequence (``evict``); a node without one is rebuilt on demand from the
live sequence that shares the longest prefix with it (an ancestor, or a
descendant, which costs nothing), decoding only the missing tokens.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import BackendError
from .base import BackendStats, Handle
from .threads import ThreadGovernor

BATCH_TOKENS = 512
"""Tokens per ``llama_decode`` call (llama.cpp's n_batch = n_ubatch)."""

REBUILD_CHUNK = 32
"""Tokens per decode when rebuilding generated tokens. Measured (SmolLM2,
0.3.36, CPU): a batch of up to 63 tokens yields KV cells bitwise equal to
decoding them one by one, 64 or more take another kernel path and differ by
up to ~1 logit downstream. Rebuilt cells then equal the evicted ones."""

RETAINED: Handle = 0
"""Node-table key of the last released root (never a handle given out)."""

Entry = tuple[int, int, Sequence[int], bool]
"""One batch entry: (token, position, sequence ids, want logits)."""


class CacheFull(Exception):
    """llama_decode found no KV slot and nothing unpinned was left to evict."""


@dataclass(eq=False)
class Node:
    path: tuple[int, ...]  # every token from the root prompt on; the last is pending
    seq: int | None = None  # KV sequence holding path[:-1]; None when evicted
    prompt_len: int = 0  # the root prompt's length (it was prefilled in big batches)
    last_used: int = 0


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix (binary search on C-speed slice compares)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class KVStore:
    """The context, its batch, the node table and the pool of sequence ids."""

    def __init__(
        self, lib: Any, ctx: Any, n_vocab: int, max_sequences: int, stats: BackendStats, threads: ThreadGovernor
    ) -> None:
        self.lib = lib
        self.threads = threads
        self.ctx = ctx
        self.mem = lib.llama_get_memory(ctx)
        self.n_vocab = n_vocab
        self.max_sequences = max_sequences
        self.stats = stats
        self.nodes: dict[Handle, Node] = {}
        self.clock = 0  # LRU time, ticks once per root()/extend()
        self._next_handle = 1
        self._free = list(range(max_sequences - 1, -1, -1))
        self._batch = lib.llama_batch_init(BATCH_TOKENS, 0, max_sequences)

    # -- nodes -------------------------------------------------------------

    def add(self, node: Node) -> Handle:
        handle = self._next_handle
        self._next_handle += 1
        node.last_used = self.clock
        self.nodes[handle] = node
        return handle

    def get(self, handle: Handle) -> Node:
        node = self.nodes.get(handle) if handle != RETAINED else None
        if node is None:
            raise BackendError(f"unknown or released model state {handle}")
        return node

    def release(self, handle: Handle) -> None:
        node = self.nodes.pop(handle, None) if handle != RETAINED else None
        if node is None or node.seq is None:
            return
        if len(node.path) == node.prompt_len:
            # A released root keeps its cells, evictable like any LRU node, so
            # the next root (the next chat turn) can reuse its prefix.
            old = self.nodes.pop(RETAINED, None)
            if old is not None:
                self.evict(old)
            self.nodes[RETAINED] = node
        else:
            self.evict(node)

    # -- sequence ids ------------------------------------------------------

    @property
    def live(self) -> int:
        return self.max_sequences - len(self._free)

    def alloc_seq(self, pinned: Collection[Handle]) -> int:
        if not self._free and not self.evict_lru(pinned):
            raise BackendError("all KV sequences are in use by the running requests")
        seq = self._free.pop()
        self.stats.peak_live_sequences = max(self.stats.peak_live_sequences, self.live)
        return seq

    def free_seq(self, seq: int) -> None:
        self.lib.llama_memory_seq_rm(self.mem, seq, -1, -1)
        self._free.append(seq)

    def fork(self, src: int, pinned: Collection[Handle]) -> int:
        """A new sequence sharing every cell of ``src``."""
        seq = self.alloc_seq(pinned)
        self.lib.llama_memory_seq_cp(self.mem, src, seq, -1, -1)
        return seq

    def truncate(self, seq: int, length: int) -> None:
        """Drop the cells at positions >= ``length`` from ``seq``."""
        self.lib.llama_memory_seq_rm(self.mem, seq, length, -1)

    def evict(self, node: Node) -> None:
        if node.seq is not None:
            self.free_seq(node.seq)
            node.seq = None

    def evict_lru(self, pinned: Collection[Handle]) -> bool:
        """Take the sequence of the least recently used unpinned node."""
        victim = None
        for handle, node in self.nodes.items():
            if node.seq is not None and handle not in pinned and (victim is None or node.last_used < victim.last_used):
                victim = node
        if victim is None:
            return False
        self.evict(victim)
        return True

    # -- decoding ----------------------------------------------------------

    def decode(
        self, entries: Sequence[Entry], pinned: Collection[Handle] = (), chunk_size: int = BATCH_TOKENS
    ) -> list[np.ndarray]:
        """Decode ``entries`` in chunks of ``chunk_size``; logits rows (copies) for
        the entries that asked for them, in order. A full cache evicts unpinned
        LRU sequences and retries; raises ``CacheFull`` when none is left."""
        lib, batch, rows = self.lib, self._batch, []
        for start in range(0, len(entries), chunk_size):
            chunk = entries[start : start + chunk_size]
            for i, (token, pos, seqs, logits) in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = pos
                batch.n_seq_id[i] = len(seqs)
                ids = batch.seq_id[i]
                for j, seq in enumerate(seqs):
                    ids[j] = seq
                batch.logits[i] = logits
            batch.n_tokens = len(chunk)
            run = lambda: lib.llama_decode(self.ctx, batch)  # noqa: E731
            while (rc := self.threads.decode(run, len(chunk))) == 1:
                if not self.evict_lru(pinned):
                    raise CacheFull
            if rc != 0:
                raise BackendError(f"llama_decode failed (status {rc})")
            self.stats.decode_calls += 1
            self.stats.evaluated_tokens += len(chunk)
            for i, entry in enumerate(chunk):
                if entry[3]:
                    ptr = lib.llama_get_logits_ith(self.ctx, i)
                    rows.append(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy())
        return rows

    def materialize(self, handle: Handle, pinned: Collection[Handle]) -> int:
        """Give ``handle``'s node a sequence holding ``path[:-1]``, rebuilding from
        the live sequence with the longest shared prefix. Returns tokens decoded."""
        node = self.get(handle)
        if node.seq is not None:
            return 0
        pinned = {*pinned, handle}
        seq = self.alloc_seq(pinned)
        target = len(node.path) - 1
        src, shared = self._best_source(node.path, target)
        if src is not None and shared > 0:
            self.lib.llama_memory_seq_cp(self.mem, src, seq, 0, shared)
        node.seq = seq
        todo = node.path[shared:target]
        entries = [(tok, shared + i, (seq,), False) for i, tok in enumerate(todo)]
        # Prompt tokens in big batches (as first evaluated), generated ones in
        # small chunks (see REBUILD_CHUNK).
        n_prompt = max(0, min(len(entries), node.prompt_len - 1 - shared))
        try:
            self.decode(entries[:n_prompt], pinned)
            self.decode(entries[n_prompt:], pinned, REBUILD_CHUNK)
        except CacheFull:
            self.evict(node)
            raise BackendError(
                f"the KV cache cannot hold a path of {len(node.path)} tokens",
                hint="use a larger --ctx",
            ) from None
        return len(todo)

    def _best_source(self, path: tuple[int, ...], limit: int) -> tuple[int | None, int]:
        best_seq, best = None, 0
        for node in self.nodes.values():
            if node.seq is None:
                continue
            n = min(limit, len(node.path) - 1, common_prefix(node.path, path))
            if n > best:
                best_seq, best = node.seq, n
                node.last_used = self.clock
                if best == limit:
                    break
        return best_seq, best

    def cells_in_use(self) -> int:
        """Distinct KV cells held by live sequences (shared prefixes count once)."""
        trie: dict[int, Any] = {}  # token -> the next level
        count = 0
        for node in self.nodes.values():
            if node.seq is None:
                continue
            level = trie
            for tok in node.path[:-1]:
                nxt = level.get(tok)
                if nxt is None:
                    nxt = level[tok] = {}
                    count += 1
                level = nxt
        return count

    def close(self) -> None:
        if self.ctx is not None:
            self.lib.llama_batch_free(self._batch)
            self.lib.llama_free(self.ctx)
            self.ctx = None
