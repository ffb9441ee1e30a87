"""The chat use case: one conversation with one model at a time, no terminal I/O.

The REPL (``ui/repl.py``) reads lines and draws answers; everything it asks
for lives here: answering a turn with the conversation so far, keeping the
conversation inside the context window, switching models, saving and loading.
One-line notices (e.g. "dropped the oldest turns") go through ``notify``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ContextManager

from .settings import ChatSettings
from .conversation import Conversation, Turn, load_conversation, save_conversation
from ..core.errors import MarcoError
from ..reasoner import LOOP_NOTICE, Answer, Interrupted, ModelChoice, Reasoner, check_question, choose_model
from ..models.registry import Registry, ResolvedModel
from ..core.settings import Mode, RuntimeSettings

if TYPE_CHECKING:
    from ..search import Observer, SearchResult

ReasonerFactory = Callable[[ResolvedModel, RuntimeSettings], Reasoner]
Notify = Callable[[str], None]
Loading = Callable[[str], ContextManager[None]]


@dataclass(frozen=True)
class ContextUsage:
    used: int | None  # tokens the conversation takes; None while the model is not loaded
    n_ctx: int
    turns: int  # answered turns re-sent to the model
    dropped: int  # answered turns that no longer fit


class ChatSession:
    def __init__(
        self,
        registry: Registry,
        runtime: RuntimeSettings,
        model: ResolvedModel,
        conversation: Conversation | None = None,
        *,
        reasoner_factory: ReasonerFactory = Reasoner,
        notify: Notify = lambda _message: None,
        backend: str | None = None,
    ) -> None:
        self.registry = registry
        self.backend = backend  # --backend URL: every model of this chat runs there
        self.runtime = runtime
        self.conversation = conversation or Conversation()
        self.notify = notify
        self._factory = reasoner_factory
        self.reasoner = reasoner_factory(model, runtime)  # loads the model on first use
        self.conversation.model = self._spec(model)
        self.last_search: SearchResult | None = None

    @property
    def model(self) -> ResolvedModel:
        return self.reasoner.model

    @property
    def settings(self) -> ChatSettings:
        return self.conversation.settings

    @settings.setter
    def settings(self, value: ChatSettings) -> None:
        self.conversation.settings = value

    # -- turns -------------------------------------------------------------
    def ask(self, question: str, *, on_text: Callable[[str], None] | None = None,
            observer: Observer | None = None, loading: Loading | None = None) -> Answer:
        """Answer ``question`` in the context of the earlier turns, then record
        the turn. Ctrl-C (``Interrupted`` or a bare ``KeyboardInterrupt``)
        records nothing; a model error records the question with the error.
        ``loading(label)`` wraps the model load when this turn must do it."""
        question = check_question(question)
        settings = self.settings
        try:
            if loading is not None and not self.reasoner.loaded:
                with loading(self.model.label):
                    self.reasoner.backend  # noqa: B018 - loads the model
            self._fit(question)
            answer = self.reasoner.ask(
                question, mode=settings.mode, generation=settings.generation, search=settings.search,
                history=self.conversation.history(), on_text=on_text, observer=observer,
            )
        except Interrupted as exc:
            self.last_search = exc.partial.search or self.last_search
            raise
        except Exception as exc:  # a bug too: the question is kept for --save
            self.conversation.add(Turn(question, "", error=str(exc) or type(exc).__name__))
            raise
        self.conversation.add(Turn(question, answer.answer, answer.thought or ""))
        if answer.looped:
            self.notify(LOOP_NOTICE)
        if answer.search is not None:
            self.last_search = answer.search
        return answer

    def _prompt_size(self, question: str, start: int) -> int:
        history = self.conversation.history(start)
        return len(self.reasoner.prompt_tokens(question, system=self.settings.system, history=history))

    def _fit(self, question: str) -> None:
        """Drop the oldest turns from the context until the prompt leaves room
        for an answer of ``max-tokens`` (at most half the window, so a huge
        max-tokens cannot push every turn out)."""
        conv = self.conversation
        n_ctx = self.reasoner.backend.info.n_ctx
        budget = n_ctx - min(self.settings.max_tokens, n_ctx // 2)
        first = conv.context_start
        if first >= len(conv.turns) or self._prompt_size(question, first) <= budget:
            return
        # Fewer turns never make the prompt longer: bisect for the first turn
        # that can stay. With none left, the question alone is what it is; a
        # question longer than the window is the reasoner's error to report.
        lo, hi = first + 1, len(conv.turns)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._prompt_size(question, mid) <= budget:
                hi = mid
            else:
                lo = mid + 1
        conv.context_start = lo
        dropped = sum(1 for t in conv.turns[first:lo] if t.error is None)
        if dropped:
            s = "" if dropped == 1 else "s"
            self.notify(f"the conversation no longer fits in the context ({n_ctx} tokens): "
                        f"dropped the oldest {dropped} turn{s} from it")

    def context_usage(self) -> ContextUsage:
        conv = self.conversation
        turns = len(conv.in_context)
        dropped = sum(1 for t in conv.turns[: conv.context_start] if t.error is None)
        if not self.reasoner.loaded:
            return ContextUsage(None, self.runtime.n_ctx, turns, dropped)
        # the prompt of an empty next question: what the conversation already takes
        used = self._prompt_size("", conv.context_start)
        return ContextUsage(used, self.reasoner.backend.info.n_ctx, turns, dropped)

    # -- commands ----------------------------------------------------------
    def set_mode(self, mode: Mode | str) -> None:
        self.settings = self.settings.with_mode(mode)

    def set(self, key: str, raw: str) -> None:
        self.settings = self.settings.with_text(key, raw)

    def reset(self) -> None:
        self.conversation.reset()
        self.last_search = None

    def switch_model(self, spec: str, *, loading: Loading | None = None) -> ModelChoice:
        """Load ``spec`` in place of the current model. On any error (unknown
        name, missing or unreadable file, Ctrl-C) the current model stays."""
        choice = choose_model(self.registry, spec, backend=self.backend)  # unknown or missing: nothing changed yet
        if choice.model.path == self.model.path:
            return choice  # already in use: nothing to reload
        new = self._factory(choice.model, self.runtime)
        # Free the old model first: two 7B models may not fit in memory together.
        # If the new one fails to load, the old one loads again on the next question.
        self.reasoner.close()
        try:
            with loading(choice.model.label) if loading else contextlib.nullcontext():
                new.backend  # noqa: B018 - load now, so a bad file is reported here
        except BaseException:
            new.close()
            raise
        self.reasoner = new
        self.conversation.model = self._spec(choice.model)
        return choice

    def save(self, path: str | os.PathLike) -> str:
        return str(save_conversation(self.conversation, path))

    def load(self, path: str | os.PathLike, *, loading: Loading | None = None) -> None:
        """Replace the conversation by a saved one, switching to its model when
        that is available (otherwise a notice, and the current model stays)."""
        conversation = load_conversation(path)
        saved = conversation.model
        if saved and saved != self.conversation.model:
            try:
                self.switch_model(saved, loading=loading)
            except MarcoError as exc:
                self.notify(f"the conversation was saved with '{saved}' ({exc}); "
                            f"continuing with {self.model.label}")
        conversation.model = self.conversation.model
        self.conversation = conversation
        self.last_search = None

    def close(self) -> None:
        self.reasoner.close()

    def _spec(self, model: ResolvedModel) -> str:
        """What to write in the file so the model resolves again: the registry
        label, or the file's path for a model given as a path."""
        if self.registry.models.get(model.entry.name) == model.entry:
            return model.label
        return str(model.path.resolve())


def open_session(
    registry: Registry,
    runtime: RuntimeSettings,
    *,
    model: str | None,
    model_given: bool,
    resume: str | os.PathLike | None = None,
    overrides: dict[str, object] | None = None,
    mode: Mode | None = None,
    reasoner_factory: ReasonerFactory = Reasoner,
    notify: Notify = lambda _message: None,
    backend: str | None = None,
) -> ChatSession:
    """A new or resumed chat. Resuming restores the saved model and settings;
    options given on the command line (``model_given``, ``mode``, ``overrides``
    as /set keys) win over the saved ones."""
    conversation = load_conversation(resume) if resume else Conversation()
    settings = conversation.settings.with_mode(mode) if mode else conversation.settings
    for key, value in (overrides or {}).items():
        settings = settings.with_value(key, value)
    conversation.settings = settings
    choice = _choose(registry, model, model_given, conversation.model, notify, backend)
    if choice.notice:
        notify(choice.notice)
    return ChatSession(registry, runtime, choice.model, conversation,
                       reasoner_factory=reasoner_factory, notify=notify, backend=backend)


def _choose(registry: Registry, spec: str | None, given: bool, saved: str, notify: Notify,
            backend: str | None = None) -> ModelChoice:
    if saved and not given:
        try:
            return choose_model(registry, saved, backend=backend)
        except MarcoError as exc:
            notify(f"the conversation was saved with '{saved}', which is not available ({exc})")
    return choose_model(registry, spec, backend=backend)
