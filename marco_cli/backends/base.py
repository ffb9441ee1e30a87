"""The one narrow interface between the search and an inference engine.

The search asks a backend to *continue sequences*: "from this node's state,
sample tokens until one of these stops, tell me the tokens and each token's
confidence". Everything about KV caches, batching and sampling lives behind
it. Nothing here imports llama_cpp, so ``marco_cli.search`` and its tests run
without it.

Vocabulary:

- A **handle** is an opaque ticket for "the model state after the root prompt
  plus some tokens". ``root()`` returns one; ``extend()`` returns one per
  continuation that asked to be kept. Handles stay valid until ``release()``;
  a backend may evict the underlying cache and rebuild it transparently.
- A **continuation** is what one request produced: token ids (never
  re-tokenised text), the decoded text, and the token confidence
  ``c_i = exp(l_i) / sum_{k<=5} exp(l_k)`` (Marco-o1 paper, eq. 1, computed
  from raw temperature-1 logits) for every sampled token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

Handle = int
"""Opaque id of a model state (root prompt + tokens); owned by the backend."""


class StopReason(str, Enum):
    DELIMITER = "delimiter"  # the step delimiter (blank line by default)
    THOUGHT_END = "thought_end"  # "</Thought>"
    OUTPUT_END = "output_end"  # "</Output>"
    EOS = "eos"  # an end-of-generation token (<|im_end|>, <|endoftext|>); it is not
    # part of the continuation's tokens, text or confidences (the state stays before it)
    LENGTH = "length"  # the request's max_tokens
    CONTEXT = "context"  # the path reached the end of the context window
    LOOP = "loop"  # the loop guard saw degenerate repetition (``loops.py``); all tokens kept

    @property
    def terminal(self) -> bool:
        """Whether a path that stopped this way is finished (no more steps)."""
        return self in (StopReason.OUTPUT_END, StopReason.EOS, StopReason.CONTEXT, StopReason.LOOP)


@dataclass(frozen=True)
class Stop:
    """A text that ends a continuation once it appears in the generated text.

    ``keep=False`` drops the stop text's tokens (from the token where it
    begins) from the continuation and from the model state, so the caller can
    put something else there (reflection replaces ``</Thought>``).
    ``needs_content=True`` ignores a match that has only whitespace before it
    (a step does not end on the blank line right after ``<Thought>``).
    """

    text: str
    reason: StopReason
    keep: bool = True
    needs_content: bool = False


@dataclass(frozen=True)
class Sampling:
    """Sampling for one request. Temperature 0 means greedy (argmax).

    Every request carries its own seed, so a result does not depend on which
    other requests shared its batch: same seed, same tokens.
    """

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    seed: int = 0


@dataclass(frozen=True)
class Request:
    """Continue the state ``parent``.

    ``forced`` tokens are appended first without sampling (no confidences),
    e.g. the reflection phrase. With ``max_tokens == 0`` only the forced tokens
    are added. ``keep=False`` frees the new state when done (rollouts).
    ``loop_guard`` ends the continuation with ``StopReason.LOOP`` once its
    sampled text repeats itself (``loops.py``).
    """

    parent: Handle
    max_tokens: int
    stops: tuple[Stop, ...] = ()
    sampling: Sampling = field(default_factory=Sampling)
    forced: tuple[int, ...] = ()
    keep: bool = True
    loop_guard: bool = False


@dataclass(frozen=True)
class Continuation:
    handle: Handle | None  # state after these tokens; None when keep=False
    tokens: tuple[int, ...]  # forced tokens first, then sampled ones
    text: str  # decoded text of ``tokens``
    confidences: tuple[float, ...]  # one per sampled token, in [0, 1]
    stop: StopReason
    n_forced: int = 0

    @property
    def n_sampled(self) -> int:
        return len(self.tokens) - self.n_forced


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    n_ctx: int  # tokens one path may hold (prompt + generated)
    n_vocab: int
    eos_tokens: tuple[int, ...]
    chat_template: str | None  # from GGUF metadata, when present
    gpu_layers: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    # llama.cpp's llama_model_size: the bytes of weights a decode reads. The
    # one size both size rules use (search/batching.py, backends/threads.py);
    # 0 where marco cannot know it (a remote server).
    weights_bytes: int = 0


@dataclass
class BackendStats:
    """Counters a backend keeps; the search reports them (``--json``)."""

    prompt_tokens: int = 0  # root prompt tokens evaluated
    evaluated_tokens: int = 0  # every token decoded (prompt, forced, sampled, rebuilt)
    generated_tokens: int = 0  # sampled tokens
    rebuilt_tokens: int = 0  # tokens re-evaluated after an eviction
    decode_calls: int = 0
    peak_live_sequences: int = 0


TokenCallback = Callable[[int, str], None]
"""Called as ``on_token(request_index, text_piece)`` while generating (streaming)."""


@runtime_checkable
class Backend(Protocol):
    info: ModelInfo

    @property
    def stats(self) -> BackendStats: ...  # read-only: callers read the counters, the backend keeps them

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """Token ids for ``text``; ``special`` parses ``<|im_start|>`` & co."""

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def root(self, prompt_tokens: Sequence[int]) -> Handle:
        """Evaluate the prompt (reusing any cached common prefix) and return its
        state. Raises ContextOverflowError when it does not fit."""

    def extend(self, requests: Sequence[Request], on_token: TokenCallback | None = None) -> list[Continuation]:
        """Run all requests, batched together where the backend can; results in
        request order. A path that reaches the context end stops with
        ``StopReason.CONTEXT`` instead of failing."""

    def release(self, handle: Handle) -> None:
        """Forget a state; its cache cells are freed when no other state shares them
        (a backend may keep a released root's cells for prefix reuse until it needs room)."""

    def close(self) -> None: ...
