"""``marco serve``'s use case, without HTTP: one Reasoner answering chat
requests one at a time, and the OpenAI-shaped JSON of its answers.

The model is a single local resource (one llama.cpp context, or one remote
backend's handles), so requests run on ONE worker thread, in arrival order: a
queue by construction. Each request holds a ``Ticket``: when its client goes
away, its time is up or the server shuts down, its generation or search stops
at the next token (``stopping.py``), and a queued request that is already
stopped never runs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from ..core.settings import GenerationSettings, Mode, SearchSettings
from ..formats.split import split
from ..models.registry import ResolvedModel
from ..reasoner import Answer, Interrupted, Reasoner, search_summary
from . import presets
from .limits import ServerLimits
from .schema import ChatCall, RequestError, parse_request, to_call
from .stopping import Halt, RequestStopped, StoppableBackend, Ticket, shutting_down

if TYPE_CHECKING:
    from ..backends.base import Backend


@dataclass(frozen=True)
class StandIn:
    """The registry default this server answers for, because it was not on
    disk and the fallback model runs instead (``marco serve`` without ``-m``)."""

    model: ResolvedModel  # the default that is missing

    @property
    def names(self) -> set[str]:
        return model_names(self.model)


def model_names(model: ResolvedModel) -> set[str]:
    """What a client may call a model: its name, label or an alias (any case)."""
    return {model.name.lower(), model.label.lower(), *(a.lower() for a in model.entry.aliases)}


@dataclass(frozen=True)
class Reply:
    """A finished request: the answer, and whether the time limit cut it."""

    answer: Answer
    timed_out: bool = False


class ChatService:
    def __init__(
        self,
        reasoner: Reasoner,
        *,
        generation: GenerationSettings | None = None,
        search: SearchSettings | None = None,
        max_tokens: int | None = None,
        max_queue: int = 16,
        limits: ServerLimits | None = None,
        stand_in: StandIn | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        """``generation`` and ``search`` are the defaults of requests that do
        not set a value (``marco serve``'s flags); ``max_tokens`` sets both's."""
        self.generation = generation or GenerationSettings()
        self.search = search or SearchSettings()
        if max_tokens is not None:
            self.generation = replace(self.generation, max_tokens=max_tokens)
            self.search = replace(self.search, max_tokens=max_tokens)
        self.max_queue = max_queue
        self.limits = (limits or ServerLimits()).covering(
            max_tokens=max(self.generation.max_tokens, self.search.max_tokens),
            simulations=self.search.simulations,
            children=self.search.children,
            max_depth=self.search.max_depth,
            seconds=self.search.budget,
        )
        self.stand_in = stand_in
        self.note = note  # one line for the operator (stderr) when a request is stopped
        # Every model call of every request goes through the ticket check.
        self.backend = StoppableBackend(lambda: reasoner.backend, reasoner.close)
        # A Backend in all but name: its info and stats are read-only views of the real one's.
        self.reasoner = Reasoner(reasoner.model, reasoner.runtime, backend=cast("Backend", self.backend))
        model = reasoner.model
        self.name = model.name
        self.model_ids = [presets.model_id(model.name, p) for p in presets.PRESETS if p.listed]
        self._names = model_names(model)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marco-serve")
        self._waiting = 0  # submitted and not finished
        self.running = False
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.created = int(time.time())

    # -- requests ------------------------------------------------------------

    def resolve(self, model_id: str) -> tuple[str, presets.Preset, bool]:
        """(canonical id, preset, whether it was asked by the stand-in's name).
        Aliases and ``NAME:QUANT`` work, as on the command line."""
        found = presets.find(model_id, self._names)
        stand_in = False
        if found is None and self.stand_in is not None:
            found = presets.find(model_id, self.stand_in.names)
            stand_in = found is not None
        if found is None:
            raise RequestError(
                404,
                f"the model '{model_id}' does not exist; this server has: {', '.join(self.model_ids)}",
                code="model_not_found",
                param="model",
            )
        preset = found[1]
        return presets.model_id(self.name, preset), preset, stand_in

    def call(self, data: Any) -> ChatCall:
        request = parse_request(data)
        model_id, preset, stand_in = self.resolve(request.model)
        return to_call(
            request, model_id, preset.mode, self.generation, preset.search(self.search), self.limits, stand_in=stand_in
        )

    def submit(self, call: ChatCall, on_text: Callable[[str], None] | None = None) -> tuple[Future[Reply], Ticket]:
        """Queue the request; 503 when too many already wait or the server stops."""
        if self._closing.is_set():
            raise shutting_down()
        with self._lock:
            if self._waiting > self.max_queue:
                raise RequestError(
                    503,
                    f"marco is busy ({self._waiting} requests queued); try again shortly",
                    kind="server_error",
                    code="busy",
                )
            self._waiting += 1
        ticket = Ticket(self.limits.seconds)
        future = self._worker.submit(self._answer, call, on_text, ticket)
        future.add_done_callback(self._finished)
        return future, ticket

    def _finished(self, _future: Future[Reply]) -> None:
        with self._lock:
            self._waiting -= 1

    def _answer(self, call: ChatCall, on_text: Callable[[str], None] | None, ticket: Ticket) -> Reply:
        if self._closing.is_set():
            ticket.stop(Halt.SHUTDOWN)
        if ticket.reason is not None:  # stopped while it waited: never run it
            raise ticket.error()
        ticket.start()
        self.backend.ticket = ticket
        self.running = True
        answer = None
        try:
            answer = self.reasoner.ask(
                call.question,
                mode=call.mode,
                generation=call.generation,
                search=call.search,
                history=call.history,
                on_text=on_text,
                should_stop=ticket.should_stop,
            )
        except Interrupted as exc:  # stopped mid-generation: the text or best path so far
            answer = exc.partial
        except RequestStopped:
            pass
        finally:
            self.backend.ticket = None
            self.running = False
        if ticket.reason is None and answer is not None:
            return Reply(answer)
        self._note_stop(ticket, call, answer)
        if ticket.reason is Halt.TIME and answer is not None:
            return Reply(answer, timed_out=True)
        raise ticket.error()

    def _note_stop(self, ticket: Ticket, call: ChatCall, answer: Answer | None) -> None:
        if self.note is None or ticket.reason is None:
            return
        why = {Halt.GONE: "client gone", Halt.TIME: "time limit", Halt.SHUTDOWN: "shutting down"}
        done = f"{answer.generated_tokens if answer is not None else 0} tokens generated"
        if answer is not None and answer.search is not None:
            done += f", {answer.search.stats.simulations} of {call.search.simulations} simulations"
        elif call.mode is Mode.COT:
            done += f" of at most {call.generation.max_tokens}"
        self.note(f"stopped a {call.model_id} request ({why[ticket.reason]}): {done}")

    def load(self) -> None:
        """Load the model (or reach the server) now, not on the first request."""
        self._worker.submit(lambda: self.backend.inner).result()

    def begin_shutdown(self) -> None:
        """Ctrl-C: stop the running request now and refuse the queued ones
        (their clients get a JSON 503). Safe to call from a signal handler."""
        self._closing.set()
        ticket = self.backend.ticket
        if ticket is not None:
            ticket.stop(Halt.SHUTDOWN)

    def close(self) -> None:
        # Wait for the running request: the backend must not close under it.
        self.begin_shutdown()
        self._worker.shutdown(wait=True, cancel_futures=True)
        self.reasoner.close()

    # -- responses -----------------------------------------------------------

    def load_json(self) -> dict[str, Any]:
        """How busy the model is (``/health``): a request running, and how many wait."""
        running = self.running
        return {"running": int(running), "waiting": max(0, self._waiting - int(running))}

    def models_json(self) -> dict[str, Any]:
        return {"object": "list", "data": [self.model_json(m) for m in self.model_ids]}

    def model_json(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": self.created, "owned_by": "marco"}

    def headers(self, call: ChatCall) -> dict[str, str]:
        """``X-Marco-Model`` always; ``X-Marco-Fallback`` when the client asked
        for the registry default and the fallback model answered."""
        headers = {"X-Marco-Model": call.model_id}
        if call.stand_in and self.stand_in is not None:
            headers["X-Marco-Fallback"] = (
                f"{self.stand_in.model.name} is not downloaded; {self.name} answered "
                f"(marco pull {self.stand_in.model.name} gets it)"
            )
        return headers


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def finish_reason(call: ChatCall, reply: Reply) -> str:
    answer = reply.answer
    # a time limit, or the loop guard cutting a repeating answer short: not a natural end
    if reply.timed_out or answer.looped:
        return "length"
    if answer.search is not None:
        return "stop" if answer.search.complete else "length"
    if "vote" in answer.extra:  # the chosen chain's own end (the tokens counted are all chains')
        return "length" if answer.truncated else "stop"
    return "length" if answer.generated_tokens >= call.generation.max_tokens else "stop"


def usage(reply: Reply) -> dict[str, Any]:
    """OpenAI's usage: ``completion_tokens`` are the returned message's tokens
    (thought and answer); what a search generated besides (other branches,
    rollouts) is ``completion_tokens_details.reasoning_tokens``; ``total_tokens``
    counts both and the prompt. ``marco`` holds marco's own counters."""
    answer = reply.answer
    marco: dict[str, Any] = {"mode": answer.mode.value, "seconds": round(answer.seconds, 3)}
    if reply.timed_out:
        marco["stopped_by"] = "time_limit"
    if answer.search is not None:
        completion = sum(1 for c in answer.confidences if c is not None)  # sampled, not forced
        searched = max(0, answer.search.stats.tokens_generated - completion)
        marco["search"] = search_summary(answer.search)
    elif "vote" in answer.extra:  # the chosen chain is the message; the other chains were generated besides
        completion = sum(1 for c in answer.confidences if c is not None)
        searched = max(0, answer.generated_tokens - completion)
        marco["vote"] = answer.extra["vote"]
    else:
        completion, searched = answer.generated_tokens, 0
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion + searched,
        "completion_tokens_details": {"reasoning_tokens": searched},
        "marco": marco,
    }


def message_parts(reply: Reply) -> tuple[str, str]:
    """(reasoning_content, content), by the splitter the stream uses."""
    return split(reply.answer.text, reasoning=reply.answer.reasoning, thought_first=True)


def completion(call: ChatCall, reply: Reply, completion_id: str, created: int) -> dict[str, Any]:
    thought, answer = message_parts(reply)
    message = {"role": "assistant", "content": answer, "reasoning_content": thought}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": call.model_id,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(call, reply), "logprobs": None}],
        "usage": usage(reply),
    }


def chunk(
    call: ChatCall,
    completion_id: str,
    created: int,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    usage_: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``delta`` None makes the usage-only chunk."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    data: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": call.model_id,
        "choices": choices,
    }
    if usage_ is not None:
        data["usage"] = usage_
    return data
