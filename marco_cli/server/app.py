"""The HTTP face of ``marco serve``: an OpenAI-compatible FastAPI app.

- ``GET /v1/models``: ``NAME`` (chain of thought) and ``NAME+mcts`` (search);
- ``POST /v1/chat/completions``: the thought in ``message.reasoning_content``,
  the answer in ``message.content``, marco's counters in ``usage.marco``;
  ``stream: true`` sends server-sent events (thought deltas, then answer
  deltas, then ``[DONE]``; a search streams its result once it is done).

Every failure is an OpenAI-style ``{"error": {...}}`` with a 4xx/5xx status;
the route catches everything, so no request can take the server down.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..core.errors import ContextOverflowError, MarcoError, UsageError
from ..core.settings import Mode
from .schema import ChatCall, RequestError
from .service import ChatService, chunk, completion, finish_reason, new_id, usage
from ..formats.split import CONTENT, REASONING, splitter_for

KEEPALIVE_SECONDS = 10.0  # an SSE comment while a search runs, so proxies keep the line open
MAX_BODY_BYTES = 16 * 1024 * 1024
_DELTA_KEY = {REASONING: "reasoning_content", CONTENT: "content"}


def as_request_error(exc: BaseException) -> RequestError:
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, ContextOverflowError):
        return RequestError(400, str(exc), code="context_length_exceeded")
    if isinstance(exc, UsageError):
        return RequestError(400, str(exc))
    if isinstance(exc, MarcoError):
        return RequestError(500, str(exc), kind="server_error", code="model_error")
    return RequestError(500, f"internal error: {type(exc).__name__}: {exc}", kind="server_error")


def error_response(exc: BaseException) -> JSONResponse:
    err = as_request_error(exc)
    headers = {"Retry-After": "1"} if err.status == 503 else None
    return JSONResponse(err.to_json(), status_code=err.status, headers=headers)


def sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(service: ChatService) -> FastAPI:
    app = FastAPI(title="marco", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(RequestError(exc.status_code, message, kind=kind).to_json(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(RequestError(422, str(exc.errors()[:1])))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return service.models_json()

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> Any:
        try:
            service.mode_of(model_id)
        except RequestError as exc:
            return error_response(exc)
        return service.model_json(model_id)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        try:
            call = service.call(await _json_body(request))
            if call.stream:
                return _stream_response(service, call)
            answer = await asyncio.wrap_future(service.submit(call))
            return JSONResponse(completion(call, answer, new_id(), int(time.time())))
        except Exception as exc:  # noqa: BLE001 - the server answers, whatever went wrong
            return error_response(exc)

    return app


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(413, f"the request body is larger than {MAX_BODY_BYTES // 2**20} MiB")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the request body is not valid JSON ({exc})", code="invalid_json") from None


def _stream_response(service: ChatService, call: ChatCall) -> StreamingResponse:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()

    def on_text(piece: str) -> None:  # on the worker thread
        if not cancelled.is_set():
            loop.call_soon_threadsafe(queue.put_nowait, ("text", piece))

    def done(future: Future) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("done", future))

    # Submitted before the response starts, so a full queue is still a 503.
    future = service.submit(call, on_text if call.mode is Mode.COT else None, cancelled)
    future.add_done_callback(done)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    events = _events(call, queue, cancelled, splitter_for(service.reasoner.reasoning))
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _events(call: ChatCall, queue: asyncio.Queue, cancelled: threading.Event, splitter) -> AsyncIterator[str]:
    """``splitter`` follows the model's reasoning format; a model without one
    streams nothing until its answer is known (drafts are not sent)."""
    cid, created = new_id(), int(time.time())

    def delta(channel: str, text: str) -> str:
        return sse(chunk(call, cid, created, {_DELTA_KEY[channel]: text}))

    try:
        yield sse(chunk(call, cid, created, {"role": "assistant", "content": ""}))
        while True:
            try:
                kind, item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if kind == "text":
                for channel, text in splitter.feed(item):
                    if channel in _DELTA_KEY:
                        yield delta(channel, text)
                continue
            if item.exception() is not None:
                # Headers are sent: the error travels as an event, as OpenAI does.
                yield sse(as_request_error(item.exception()).to_json())
                yield "data: [DONE]\n\n"
                return
            answer = item.result()
            if call.mode is Mode.MCTS:
                parts = [(REASONING, answer.thought), (CONTENT, answer.answer)]
            else:
                parts = splitter.close()
                if not splitter.sent[CONTENT] and answer.answer:
                    parts.append((CONTENT, answer.answer))  # a thought with no <Output>
            for channel, text in parts:
                if text and channel in _DELTA_KEY:
                    yield delta(channel, text)
            yield sse(chunk(call, cid, created, {}, finish_reason(call, answer)))
            if call.include_usage:
                yield sse(chunk(call, cid, created, None, usage_=usage(answer)))
            yield "data: [DONE]\n\n"
            return
    finally:
        cancelled.set()  # the client left (or all was sent): a search still running stops early
