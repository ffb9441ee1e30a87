"""The tree engine: continue many search nodes at once on one llama.cpp context.

``extend`` runs its requests in lock-step: each step is ONE ``llama_batch``
with one entry (one output row) per still-running request, so siblings and
requests from different parents are decoded together (docs/engine.md, point
4). Before the first step every parent's pending token is decoded once, with
all of its children's sequence ids on that single entry, followed by any
forced tokens. Sampling and confidences come from the raw logits rows
(``sampling.py``); stop strings from ``stops.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import BackendError, ContextOverflowError
from .base import BackendStats, Continuation, Handle, ModelInfo, Request, StopReason, TokenCallback
from .llama_kv import BATCH_TOKENS, CacheFull, Entry, KVStore, Node
from .sampling import sample_with_confidence
from .stops import ContinuationText
from .threads import ThreadGovernor


@dataclass(eq=False)
class _Run:
    """One request while it runs."""

    index: int
    request: Request
    parent: Node
    seq: int
    forced: tuple[int, ...]
    samples: bool  # whether it samples at all (max_tokens > 0 and room left)
    text: ContinuationText
    rng: np.random.Generator
    tokens: list[int] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    kv_len: int = 0  # positions decoded into ``seq``
    row: np.ndarray | None = None  # logits to sample the next token from

    @property
    def path_len(self) -> int:
        return len(self.parent.path) + len(self.tokens)


class TreeEngine:
    def __init__(self, lib: Any, kv: KVStore, vocab: Any, info: ModelInfo, stats: BackendStats) -> None:
        self._lib = lib
        self._kv = kv
        self._vocab = vocab
        self.info = info
        self.stats = stats
        self._eos = frozenset(info.eos_tokens)

    @classmethod
    def create(
        cls,
        lib: Any,
        model: Any,
        vocab: Any,
        info: ModelInfo,
        *,
        n_cells: int,
        n_threads: int | None,
        kv_q8: bool,
        max_sequences: int | None,
    ) -> TreeEngine:
        limit = int(lib.llama_max_parallel_sequences())
        # A request needs its parent's sequence and its own: at least 2.
        n_seq = limit if max_sequences is None else max(2, min(max_sequences, limit))
        params = lib.llama_context_default_params()
        params.n_ctx = n_cells
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = n_seq
        # None: marco chooses while it runs (threads.py)
        if n_threads is None:
            governor = ThreadGovernor.automatic(weights_bytes=info.weights_bytes, offloaded=info.gpu_layers > 0)
        else:
            governor = ThreadGovernor.fixed(n_threads)
        params.n_threads = params.n_threads_batch = governor.threads
        # One cache for all branches; flash attention keeps a decode from
        # attending over other branches' cells (docs/engine.md, point 3).
        params.kv_unified = True
        params.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_ENABLED
        if kv_q8:
            params.type_k = params.type_v = lib.GGML_TYPE_Q8_0
        ctx = lib.llama_init_from_model(model, params)
        if not ctx:
            raise BackendError(f"llama.cpp cannot create a context of {n_cells} tokens", hint="try a smaller --ctx")
        governor.attach(lambda n: lib.llama_set_n_threads(ctx, n, n), governor.threads)
        stats = BackendStats()
        return cls(lib, KVStore(lib, ctx, info.n_vocab, n_seq, stats, governor), vocab, info, stats)

    @property
    def kv(self) -> KVStore:
        return self._kv

    # -- roots -------------------------------------------------------------

    def root(self, prompt_tokens: Sequence[int]) -> Handle:
        prompt = self._checked(prompt_tokens)
        if not prompt:
            raise BackendError("cannot start from an empty prompt")
        if len(prompt) >= self.info.n_ctx:
            raise ContextOverflowError(
                f"the prompt has {len(prompt)} tokens but the context holds {self.info.n_ctx}",
                hint="use a larger --ctx or a shorter prompt",
            )
        self._kv.clock += 1
        handle = self._kv.add(Node(prompt, prompt_len=len(prompt)))
        try:
            n = self._kv.materialize(handle, ())
        except BaseException:
            self._kv.release(handle)
            raise
        self.stats.prompt_tokens += n
        return handle

    def _checked(self, tokens: Sequence[int]) -> tuple[int, ...]:
        out = tuple(int(t) for t in tokens)
        if any(not 0 <= t < self.info.n_vocab for t in out):
            raise BackendError("token id out of the model's vocabulary")
        return out

    def release(self, handle: Handle) -> None:
        self._kv.release(handle)

    def next_logits(self, handle: Handle) -> np.ndarray:
        """Raw logits for the token after ``handle``'s state, leaving the state as
        it is (its pending token is decoded into a scratch sequence)."""
        kv = self._kv
        kv.clock += 1
        self.stats.rebuilt_tokens += kv.materialize(handle, ())
        node = kv.get(handle)
        node.last_used = kv.clock
        assert node.seq is not None  # materialize() gave the node a sequence
        scratch = kv.fork(node.seq, (handle,))
        try:
            return kv.decode([(node.path[-1], len(node.path) - 1, (scratch,), True)], (handle,))[0]
        finally:
            kv.free_seq(scratch)

    def close(self) -> None:
        self._kv.close()

    # -- extend ------------------------------------------------------------

    def extend(self, requests: Sequence[Request], on_token: TokenCallback | None = None) -> list[Continuation]:
        for req in requests:  # fail early, before any sequence is forked
            self._kv.get(req.parent)
            self._checked(req.forced)
        self._kv.clock += 1
        results: list[Continuation | None] = [None] * len(requests)
        # A wave needs at most one sequence per request plus one per parent.
        wave = max(1, self._kv.max_sequences // 2)
        try:
            for start in range(0, len(requests), wave):
                self._run_wave(requests, range(start, min(start + wave, len(requests))), on_token, results)
        except BaseException:
            # Ctrl-C, or a caller's on_token stopping a request: the caller never
            # sees these states, so give them back and the context stays usable.
            for done in results:
                if done is not None and done.handle is not None:
                    self._kv.release(done.handle)
            raise
        return [r for r in results if r is not None]

    def _run_wave(
        self,
        requests: Sequence[Request],
        indices: range,
        on_token: TokenCallback | None,
        results: list[Continuation | None],
    ) -> None:
        kv, n_ctx = self._kv, self.info.n_ctx
        parents = {requests[i].parent for i in indices}
        for handle in parents:
            kv.get(handle).last_used = kv.clock
            self.stats.rebuilt_tokens += kv.materialize(handle, parents)
        runs: list[_Run] = []
        try:
            self._start_runs(requests, indices, parents, runs)
            self._prefill(runs, parents, on_token)
            active = []
            for run in runs:
                if run.samples:
                    active.append(run)
                else:
                    truncated = len(run.forced) < len(run.request.forced)
                    full = truncated or (run.request.max_tokens > 0 and len(run.parent.path) + len(run.forced) >= n_ctx)
                    results[run.index] = self._finish(run, StopReason.CONTEXT if full else StopReason.LENGTH, on_token)
            while active:
                active = self._step(active, on_token, results)
        except BaseException as exc:
            for run in runs:  # finished runs own (or freed) their sequence already
                if results[run.index] is None:
                    kv.free_seq(run.seq)
            if isinstance(exc, CacheFull):
                raise BackendError("the KV cache is full", hint="use a larger --ctx") from None
            raise

    def _start_runs(self, requests: Sequence[Request], indices: range, parents: set[Handle], runs: list[_Run]) -> None:
        kv, n_ctx = self._kv, self.info.n_ctx
        for i in indices:
            req = requests[i]
            parent = kv.get(req.parent)
            assert parent.seq is not None  # _run_wave materialized every parent
            room = n_ctx - len(parent.path)
            forced = self._checked(req.forced)[:room]
            run = _Run(
                index=i,
                request=req,
                parent=parent,
                seq=kv.fork(parent.seq, parents),
                forced=forced,
                samples=req.max_tokens > 0 and len(forced) < room,
                text=ContinuationText(req.stops, loop_guard=req.loop_guard),
                rng=np.random.default_rng(req.sampling.seed),
            )
            run.kv_len = len(parent.path) - 1
            runs.append(run)

    def _prefill(self, runs: list[_Run], parents: set[Handle], on_token: TokenCallback | None) -> None:
        """Decode each parent's pending token once for all its children, then the
        forced tokens; leave every sampling run with the logits row to sample from."""
        entries: list[Entry] = []
        owners: list[list[_Run]] = []
        by_parent: dict[int, list[_Run]] = {}
        for run in runs:
            if run.samples or run.forced:
                by_parent.setdefault(id(run.parent), []).append(run)
        for group in by_parent.values():
            path = group[0].parent.path
            readers = [r for r in group if r.samples and not r.forced]
            entries.append((path[-1], len(path) - 1, tuple(r.seq for r in group), bool(readers)))
            if readers:
                owners.append(readers)
            for run in group:
                run.kv_len = len(path)
                decoded = run.forced if run.samples else run.forced[:-1]
                for k, tok in enumerate(decoded):
                    last = run.samples and k == len(decoded) - 1
                    entries.append((tok, len(path) + k, (run.seq,), last))
                    if last:
                        owners.append([run])
                run.kv_len += len(decoded)
                for tok in run.forced:
                    run.tokens.append(tok)
                    run.text.add(self._vocab.piece(tok), forced=True)
                self._stream(run, on_token)
        rows = self._kv.decode(entries, parents)
        for row, readers in zip(rows, owners):
            for run in readers:
                run.row = row

    def _step(
        self, active: list[_Run], on_token: TokenCallback | None, results: list[Continuation | None]
    ) -> list[_Run]:
        """Sample one token for every active run, then decode them all in one batch."""
        n_ctx, running, entries = self.info.n_ctx, [], []
        for run in active:
            req = run.request
            assert run.row is not None  # _prefill or the last _step left the logits to sample from
            token, conf = sample_with_confidence(run.row, req.sampling, run.rng)
            if token in self._eos:
                results[run.index] = self._finish(run, StopReason.EOS, on_token)
                continue
            run.tokens.append(token)
            run.confidences.append(conf)
            self.stats.generated_tokens += 1
            match = run.text.add(self._vocab.piece(token))
            if match is not None:  # _finish streams what survives the cut
                results[run.index] = self._finish(run, match.stop.reason, on_token, cut=match.cut)
            elif len(run.confidences) >= req.max_tokens:
                results[run.index] = self._finish(run, StopReason.LENGTH, on_token)
            elif run.path_len >= n_ctx:
                results[run.index] = self._finish(run, StopReason.CONTEXT, on_token)
            else:
                self._stream(run, on_token)
                running.append(run)
                entries.append((token, run.path_len - 1, (run.seq,), True))
        while running:
            try:
                rows = self._kv.decode(entries)
                break
            except CacheFull:
                # Nothing left to evict: the longest running path ends here.
                k = max(range(len(running)), key=lambda j: running[j].path_len)
                victim = running.pop(k)
                entries.pop(k)
                results[victim.index] = self._finish(victim, StopReason.CONTEXT, on_token, evict=True)
        else:
            return []
        for run, row in zip(running, rows):
            run.row = row
            run.kv_len = run.path_len  # the token just decoded sits at path_len - 1
        return running

    def _stream(self, run: _Run, on_token: TokenCallback | None) -> None:
        piece = run.text.streamable()
        if piece and on_token is not None:
            on_token(run.index, piece)

    def _finish(
        self,
        run: _Run,
        reason: StopReason,
        on_token: TokenCallback | None,
        *,
        cut: int | None = None,
        evict: bool = False,
    ) -> Continuation:
        kv = self._kv
        tokens = tuple(run.tokens if cut is None else run.tokens[:cut])
        n_forced = min(len(run.forced), len(tokens))
        text = self._vocab.detokenize(tokens)
        piece = run.text.finish(text)
        if piece and on_token is not None:
            on_token(run.index, piece)
        handle = None
        if not run.request.keep:
            kv.free_seq(run.seq)
        else:
            path = run.parent.path + tokens
            if run.kv_len > len(path) - 1:  # keep the invariant: last token pending
                kv.truncate(run.seq, len(path) - 1)
            node = Node(path, run.seq, prompt_len=run.parent.prompt_len)
            handle = kv.add(node)
            if evict:
                kv.evict(node)
        return Continuation(
            handle=handle,
            tokens=tokens,
            text=text,
            confidences=tuple(run.confidences[: len(tokens) - n_forced]),
            stop=reason,
            n_forced=n_forced,
        )
