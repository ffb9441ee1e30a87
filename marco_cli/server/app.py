"""The HTTP face of ``marco serve``: an OpenAI-compatible FastAPI app.

- ``GET /v1/models``: ``NAME`` (chain of thought), ``NAME+mcts`` (search) and
  the search presets (``presets.py``);
- ``POST /v1/chat/completions``: the thought in ``message.reasoning_content``,
  the answer in ``message.content``, marco's counters in ``usage.marco``;
  ``stream: true`` sends server-sent events (thought deltas, then answer
  deltas, then ``[DONE]``; a search streams its result once it is done).

Every failure is an OpenAI-style ``{"error": {...}}`` with a 4xx/5xx status;
the route catches everything, so no request can take the server down. A
client that disconnects stops its request (``stopping.py``), streaming or not.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .. import __version__
from ..core.errors import ContextOverflowError, MarcoError, UsageError
from ..core.settings import Mode
from ..formats.reasoning import ReasoningFormat
from ..formats.split import CONTENT, DRAFT, REASONING, splitter_for
from .access import AccessGuard, AccessPolicy
from .body import read_json
from .schema import ChatCall, RequestError
from .service import ChatService, Reply, chunk, completion, finish_reason, message_parts, new_id, usage
from .stopping import Halt, Ticket, client_gone, shutting_down

KEEPALIVE_SECONDS = 10.0  # an SSE comment while a search runs, so proxies keep the line open
# A format-less model's draft is its reasoning: streamed as reasoning_content,
# as the non-streamed reply gives it (formats/split.py's split()).
_DELTA_KEY = {REASONING: "reasoning_content", DRAFT: "reasoning_content", CONTENT: "content"}


def as_request_error(exc: BaseException) -> RequestError:
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, ContextOverflowError):
        return RequestError(400, str(exc), code="context_length_exceeded")
    if isinstance(exc, UsageError):
        return RequestError(400, str(exc))
    if isinstance(exc, MarcoError):
        return RequestError(500, str(exc), kind="server_error", code="model_error")
    if isinstance(exc, asyncio.CancelledError):  # the server stopped waiting for this request
        return shutting_down()
    if isinstance(exc, ClientDisconnect):  # left while sending its body: nobody reads this
        return client_gone()
    return RequestError(500, f"internal error: {type(exc).__name__}: {exc}", kind="server_error")


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> JSONResponse:
    err = as_request_error(exc)
    if err.status == 503:
        headers = {**(headers or {}), "Retry-After": "1"}
    return JSONResponse(err.to_json(), status_code=err.status, headers=headers)


def sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(service: ChatService, policy: AccessPolicy | None = None) -> Any:
    """The app, behind the access checks (``access.py``; localhost only by default)."""
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
    async def health() -> dict[str, Any]:
        return {"status": "ok", **service.load_json()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return service.models_json()

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> Any:
        try:
            return service.model_json(service.resolve(model_id)[0])
        except RequestError as exc:
            return error_response(exc)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        headers = None
        try:
            call = service.call(await read_json(request, service.limits.body_bytes))
            headers = service.headers(call)
            if call.stream:
                return _stream_response(service, call, request, headers)
            future, ticket = service.submit(call)
            reply = await _answer_or_gone(request, future, ticket)
            return JSONResponse(completion(call, reply, new_id(), int(time.time())), headers=headers)
        except (Exception, asyncio.CancelledError) as exc:  # the server answers, whatever went wrong
            return error_response(exc, headers)

    return AccessGuard(app, policy or AccessPolicy())


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body is read by now,
    so the server's next message for this request is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _answer_or_gone(request: Request, future: Future[Reply], ticket: Ticket) -> Reply:
    answer: asyncio.Future[Reply] = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(_disconnected(request))
    either: set[asyncio.Future[Any]] = {answer, gone}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        ticket.stop(Halt.SHUTDOWN)
        raise
    finally:
        gone.cancel()
    if not answer.done():
        ticket.stop(Halt.GONE)  # nobody will read it: stop the model now
        answer.cancel()  # drops it from the queue if it has not started; its result is not wanted
        raise ticket.error()
    return answer.result()


def _stream_response(
    service: ChatService, call: ChatCall, request: Request, headers: dict[str, str]
) -> StreamingResponse:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def on_text(piece: str) -> None:  # on the worker thread
        loop.call_soon_threadsafe(queue.put_nowait, ("text", piece))

    def done(future: Future[Reply]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("done", future))

    # Submitted before the response starts, so a full queue is still a 503.
    future, ticket = service.submit(call, on_text if call.mode is Mode.COT else None)
    future.add_done_callback(done)
    headers = {**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    events = _events(call, queue, ticket, request, service.reasoner.reasoning)
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _events(
    call: ChatCall,
    queue: asyncio.Queue[tuple[str, Any]],
    ticket: Ticket,
    request: Request,
    reasoning: ReasoningFormat,
) -> AsyncIterator[str]:
    cid, created = new_id(), int(time.time())
    splitter = splitter_for(reasoning, thought_first=True)

    def delta(channel: str, text: str) -> str:
        return sse(chunk(call, cid, created, {_DELTA_KEY[channel]: text}))

    async def watch() -> None:
        await _disconnected(request)
        ticket.stop(Halt.GONE)
        queue.put_nowait(("gone", None))

    watcher = asyncio.ensure_future(watch())
    try:
        yield sse(chunk(call, cid, created, {"role": "assistant", "content": ""}))
        while True:
            try:
                kind, item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if kind == "gone":
                return
            if kind == "text":
                for channel, text in splitter.feed(item):
                    yield delta(channel, text)
                continue
            if item.exception() is not None:
                # Headers are sent: the error travels as an event, as OpenAI does.
                yield sse(as_request_error(item.exception()).to_json())
                yield "data: [DONE]\n\n"
                return
            reply: Reply = item.result()
            if call.mode is not Mode.COT:  # a search or a vote: the chosen text comes whole at the end
                thought, answer = message_parts(reply)
                parts = [(REASONING, thought), (CONTENT, answer)]
            else:
                parts = splitter.close()
            for channel, text in parts:
                if text:
                    yield delta(channel, text)
            yield sse(chunk(call, cid, created, {}, finish_reason(call, reply)))
            if call.include_usage:
                yield sse(chunk(call, cid, created, None, usage_=usage(reply)))
            yield "data: [DONE]\n\n"
            return
    finally:
        watcher.cancel()
        ticket.stop(Halt.GONE)  # the client left (or all was sent): a request still running stops
