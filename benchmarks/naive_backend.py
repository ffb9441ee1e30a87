"""The obvious implementation of the Backend protocol, as a baseline to beat.

Every expansion rebuilds a text prompt (prompt + path text), resets the
model and calls ``Llama.create_completion(logprobs=5)``; the confidence comes
from the returned top log-probabilities. This is what the reference Marco-o1
code style does (docs/algorithm.md section 5): full re-evaluation per node and
full-vocabulary log-probabilities per token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from marco_cli.backends.base import (
    BackendStats,
    Continuation,
    Handle,
    ModelInfo,
    Request,
    StopReason,
    TokenCallback,
)


class NaiveBackend:
    def __init__(self, path: Path, *, n_ctx: int, n_threads: int) -> None:
        from llama_cpp import Llama

        # logits_all is required for logprobs; flash attention on, as in the engine.
        self._llm = Llama(
            str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            logits_all=True,
            flash_attn=True,
            verbose=False,
        )
        eos = (self._llm.token_eos(),)
        self.info = ModelInfo("naive", str(path), n_ctx, self._llm.n_vocab(), eos, None)
        self.stats = BackendStats()
        self._texts: dict[Handle, str] = {}
        self._next = 1

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return self._llm.tokenize(text.encode(), add_bos=False, special=special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._llm.detokenize(list(tokens), special=True).decode("utf-8", errors="replace")

    def _new(self, text: str) -> Handle:
        handle, self._next = self._next, self._next + 1
        self._texts[handle] = text
        return handle

    def root(self, prompt_tokens: Sequence[int]) -> Handle:
        return self._new(self.detokenize(prompt_tokens))

    def extend(self, requests: Sequence[Request], on_token: TokenCallback | None = None) -> list[Continuation]:
        return [self._one(req) for req in requests]

    def _one(self, req: Request) -> Continuation:
        prompt = self._texts[req.parent]
        self._llm.reset()  # no prefix reuse: the whole path is evaluated again
        n_prompt = len(self.tokenize(prompt))
        s = req.sampling
        out = self._llm.create_completion(
            prompt,
            max_tokens=req.max_tokens,
            logprobs=5,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            seed=s.seed,
            stop=[st.text for st in req.stops] or None,
        )
        choice = out["choices"][0]
        text = choice["text"]
        confidences = []
        lp = choice["logprobs"]
        for tok_lp, top in zip(lp["token_logprobs"], lp["top_logprobs"]):
            denom = sum(math.exp(v) for v in top.values())
            confidences.append(min(1.0, math.exp(tok_lp) / denom))
        tokens = tuple(self.tokenize(text))  # re-tokenised text: the naive way
        self.stats.prompt_tokens += n_prompt
        self.stats.evaluated_tokens += n_prompt + len(confidences)
        self.stats.generated_tokens += len(confidences)
        self.stats.decode_calls += 1 + len(confidences)
        stop = StopReason.LENGTH if choice["finish_reason"] == "length" else StopReason.EOS
        handle = self._new(prompt + text) if req.keep else None
        return Continuation(handle, tokens, text, tuple(confidences), stop)

    def release(self, handle: Handle) -> None:
        self._texts.pop(handle, None)

    def close(self) -> None:
        self._llm.close()
