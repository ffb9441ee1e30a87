"""A scripted backend for the chat's unit tests: one token per character, so
context sizes are easy to reason about, and replies, failures and Ctrl-C on
demand. The chat's real-model tests (test_chat.py) run llama.cpp instead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from marco_cli.backends.base import BackendStats, Continuation, ModelInfo, Request, StopReason
from marco_cli.core.errors import BackendError, ContextOverflowError
from marco_cli.reasoner import Reasoner
from marco_cli.models.registry import Registry, ResolvedModel, load_registry, resolve
from marco_cli.chat.session import ChatSession
from marco_cli.core.settings import RuntimeSettings
from marco_cli.formats.reasoning import Reasoning


class FakeBackend:
    def __init__(self, n_ctx: int = 4096, replies: Sequence[str] = ()) -> None:
        self.info = ModelInfo("fake", "fake.gguf", n_ctx, 256, (0,), None)
        self.stats = BackendStats()
        self.replies = list(replies)
        self.prompts: list[str] = []  # every prompt evaluated, as text
        self.interrupt_after: int | None = None  # raise KeyboardInterrupt after this many pieces
        self.fail: str | None = None  # raise BackendError with this message
        self.closed = False
        self.turn = 0

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return [ord(c) for c in text]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join(map(chr, tokens))

    def root(self, prompt_tokens: Sequence[int]) -> int:
        if len(prompt_tokens) > self.info.n_ctx:
            raise ContextOverflowError(f"the prompt has {len(prompt_tokens)} tokens")
        self.prompts.append(self.detokenize(prompt_tokens))
        return 1

    def extend(self, requests: Sequence[Request], on_token=None) -> list[Continuation]:
        if self.fail:
            raise BackendError(self.fail)
        self.turn += 1
        reply = self.replies.pop(0) if self.replies else (
            f"<Thought>thinking {self.turn}</Thought><Output>answer {self.turn}</Output>")
        text = reply[: requests[0].max_tokens]
        for i, piece in enumerate(text):
            if self.interrupt_after is not None and i >= self.interrupt_after:
                raise KeyboardInterrupt
            if on_token is not None:
                on_token(0, piece)
        return [Continuation(None, self.tokenize(text), text, (1.0,) * len(text), StopReason.OUTPUT_END)]

    def release(self, handle: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def marco_registry() -> Registry:
    """The shipped registry with the embedded model declared to speak Marco-o1's
    format: the fake backend answers in <Thought>/<Output>."""
    registry = load_registry()
    models = dict(registry.models)
    models["smollm2-135m"] = replace(models["smollm2-135m"], reasoning=Reasoning.MARCO)
    return replace(registry, models=models)


def tiny_model() -> ResolvedModel:
    return resolve(marco_registry(), "tiny")


class Factory:
    """A reasoner factory that hands out fake backends and remembers them."""

    def __init__(self, n_ctx: int = 4096) -> None:
        self.n_ctx = n_ctx
        self.backends: list[FakeBackend] = []

    def __call__(self, model: ResolvedModel, runtime: RuntimeSettings) -> Reasoner:
        backend = FakeBackend(self.n_ctx)
        self.backends.append(backend)
        return Reasoner(model, runtime, backend=backend)

    @property
    def last(self) -> FakeBackend:
        return self.backends[-1]


def fake_session(n_ctx: int = 4096, notices: list[str] | None = None, **kw) -> tuple[ChatSession, Factory]:
    factory = Factory(n_ctx)
    sink = notices if notices is not None else []
    session = ChatSession(marco_registry(), RuntimeSettings(), tiny_model(), reasoner_factory=factory,
                          notify=sink.append, **kw)
    return session, factory
