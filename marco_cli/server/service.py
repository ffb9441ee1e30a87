"""``marco serve``'s use case, without HTTP: one Reasoner answering chat
requests one at a time, and the OpenAI-shaped JSON of its answers.

The model is a single local resource (one llama.cpp context, or one remote
backend's handles), so requests run on ONE worker thread, in arrival order: a
queue by construction. A request whose client went away still finishes its
generation (the backend is never left mid-call); a search sees ``should_stop``
and ends early.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from ..reasoner import Answer, Reasoner, search_summary
from ..core.settings import GenerationSettings, Mode, SearchSettings
from .schema import ChatCall, RequestError, parse_request, to_call

METHODS = {"": Mode.COT, "cot": Mode.COT, "mcts": Mode.MCTS}


class ChatService:
    def __init__(
        self,
        reasoner: Reasoner,
        *,
        generation: GenerationSettings | None = None,
        search: SearchSettings | None = None,
        max_tokens: int | None = None,
        max_queue: int = 16,
    ) -> None:
        """``generation`` and ``search`` are the defaults of requests that do
        not set a value (``marco serve``'s flags); ``max_tokens`` sets both's."""
        self.reasoner = reasoner
        self.generation = generation or GenerationSettings()
        self.search = search or SearchSettings()
        if max_tokens is not None:
            self.generation = replace(self.generation, max_tokens=max_tokens)
            self.search = replace(self.search, max_tokens=max_tokens)
        self.max_queue = max_queue
        model = reasoner.model
        self.name = model.name
        self.model_ids = [model.name, f"{model.name}+mcts"]
        self._names = {model.name.lower(), model.label.lower(), *model.entry.aliases}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marco-serve")
        self._waiting = 0  # submitted and not finished
        self._lock = threading.Lock()
        self.created = int(time.time())

    # -- requests ------------------------------------------------------------

    def mode_of(self, model_id: str) -> Mode:
        """``NAME`` answers by chain of thought, ``NAME+mcts`` by tree search
        (aliases and ``NAME:QUANT`` work too, as on the command line)."""
        wanted = model_id.strip().lower()
        for method, mode in METHODS.items():
            suffix = f"+{method}" if method else ""
            if wanted.endswith(suffix) and wanted[: len(wanted) - len(suffix)] in self._names:
                return mode
        raise RequestError(
            404, f"the model '{model_id}' does not exist; this server has: {', '.join(self.model_ids)}",
            code="model_not_found", param="model",
        )

    def call(self, data: Any) -> ChatCall:
        request = parse_request(data)
        return to_call(request, self.mode_of(request.model), self.generation, self.search)

    def submit(
        self,
        call: ChatCall,
        on_text: Callable[[str], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> Future[Answer]:
        """Queue the request; 503 when too many already wait."""
        with self._lock:
            if self._waiting > self.max_queue:
                raise RequestError(
                    503, f"marco is busy ({self._waiting} requests queued); try again shortly",
                    kind="server_error", code="busy",
                )
            self._waiting += 1
        future = self._worker.submit(self._answer, call, on_text, cancelled)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future) -> None:
        with self._lock:
            self._waiting -= 1

    def _answer(self, call: ChatCall, on_text, cancelled: threading.Event | None) -> Answer:
        return self.reasoner.ask(
            call.question, mode=call.mode, generation=call.generation, search=call.search,
            history=call.history, on_text=on_text,
            should_stop=cancelled.is_set if cancelled is not None else None,
        )

    def load(self) -> None:
        """Load the model (or reach the server) now, not on the first request."""
        self._worker.submit(lambda: self.reasoner.backend).result()

    def close(self) -> None:
        # Wait for the running request: the backend must not close under it.
        self._worker.shutdown(wait=True, cancel_futures=True)
        self.reasoner.close()

    # -- responses -----------------------------------------------------------

    def models_json(self) -> dict[str, Any]:
        return {"object": "list", "data": [self.model_json(m) for m in self.model_ids]}

    def model_json(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": self.created, "owned_by": "marco"}


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def finish_reason(call: ChatCall, answer: Answer) -> str:
    if answer.looped:  # the loop guard cut a repeating answer short: not a natural end
        return "length"
    if answer.search is not None:
        return "stop" if answer.search.complete else "length"
    return "length" if answer.generated_tokens >= call.generation.max_tokens else "stop"


def usage(answer: Answer) -> dict[str, Any]:
    marco: dict[str, Any] = {"mode": answer.mode.value, "seconds": round(answer.seconds, 3)}
    if answer.search is not None:
        marco["search"] = search_summary(answer.search)
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.generated_tokens,
        "total_tokens": answer.prompt_tokens + answer.generated_tokens,
        "marco": marco,
    }


def completion(call: ChatCall, answer: Answer, completion_id: str, created: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": answer.answer, "reasoning_content": answer.thought}
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": call.model_id,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(call, answer), "logprobs": None}],
        "usage": usage(answer),
    }


def chunk(call: ChatCall, completion_id: str, created: int, delta: dict[str, Any] | None,
          finish: str | None = None, usage_: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``delta`` None makes the usage-only chunk."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    data: dict[str, Any] = {
        "id": completion_id, "object": "chat.completion.chunk", "created": created,
        "model": call.model_id, "choices": choices,
    }
    if usage_ is not None:
        data["usage"] = usage_
    return data
