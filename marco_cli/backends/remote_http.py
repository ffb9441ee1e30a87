"""HTTP to an OpenAI-compatible server: auth, timeouts, retries, one-line errors.

Transient failures are retried with exponential backoff, within bounds set
by time, not by a count of tries:

- the server answered "busy" (429, 5xx, ``Retry-After`` honoured): tried
  again until the request's ``timeout`` would be spent (a llama-server still
  loading its model answers 503 for a while);
- the server could not be reached (connection refused or dropped before an
  answer, e.g. a stale keep-alive connection) after it had answered before:
  tried again for at most ``RECONNECT_WINDOW`` seconds (also within
  ``timeout``), long enough for a restart's gap, short enough that a dead
  server ends a search promptly. A server never reached is a wrong URL or a
  server not started: that fails at once.

A read timeout is not retried (it already waited the whole timeout), and a
connection that breaks while an answer streams in is not either (its tokens
are half-delivered): the caller gets a ``BackendError`` and an MCTS search
ends there with its best answer so far. Every failure becomes a
``BackendError`` that names the server and says what to do. No llama_cpp here.

A stream that goes quiet is watched: a llama-server told to stop (SIGTERM)
closes its listening socket at once but holds open connections silent for
about 30 s before it exits. When no byte has come for ``STALL_PROBE_AFTER``
seconds, a fresh TCP connection to the server's address tells the two cases
apart: refused means nobody listens any more, and the stream is ended then;
any other outcome (accepted, timed out behind a proxy) means keep waiting,
within the read timeout as before.
"""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ..core.errors import BackendError

NOT_RETRIED = {501, 505}  # 5xx that no retry can fix
FIRST_BACKOFF = 0.5  # seconds before the second try; doubles up to MAX_BACKOFF
MAX_BACKOFF = 8.0  # seconds, between two tries
MAX_RETRY_AFTER = 30.0  # a server asking for longer gets this much
RECONNECT_WINDOW = 5.0  # seconds an unreachable server is tried again before it counts as gone
STALL_PROBE_AFTER = 2.0  # seconds a stream may be silent before the server's port is checked
STALL_PROBE_EVERY = 1.0  # seconds between two checks while it stays silent


class ServerError(BackendError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, status: int, detail: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.detail = detail


def error_detail(response: httpx.Response) -> str:
    """The server's own words: OpenAI's ``{"error": {"message"}}``, FastAPI's
    ``{"detail"}``, or the start of the body."""
    try:
        body = json.loads(response.read() or b"null")
    except (ValueError, httpx.HTTPError):
        body = None
    message: Any = None
    if isinstance(body, dict):
        err = body.get("error")
        message = err.get("message") if isinstance(err, dict) else err
        message = message or body.get("detail") or body.get("message")
    if message is None:
        try:
            message = response.text
        except (UnicodeDecodeError, httpx.HTTPError):
            message = ""
    text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "")


class Http:
    """A small retrying client bound to one server (thread-safe, like httpx.Client)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        concurrency: int = 4,
        backoff: float = FIRST_BACKOFF,
        reconnect_window: float = RECONNECT_WINDOW,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.backoff = backoff
        self.reconnect_window = min(reconnect_window, timeout)
        self.cancelled = threading.Event()  # set: waits between retries end at once
        self._sleep = sleep
        self._clock = clock
        self._reached = False  # some request got an HTTP answer
        self.stall_probe_after = STALL_PROBE_AFTER
        self.stall_probe_every = STALL_PROBE_EVERY
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    # -- requests ------------------------------------------------------------

    def get_json(self, path: str) -> Any:
        with self._send("GET", path, None) as response:
            return self._json(response, path)

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        with self._send("POST", path, body) as response:
            return self._json(response, path)

    @contextmanager
    def stream(self, path: str, body: dict[str, Any]) -> Iterator[Watched]:
        """POST and hold the response open (server-sent events); closing it tells
        the server to stop generating. Its lines come from ``iter_lines()``,
        watched for a server that went silent because it is going away."""
        with self._send("POST", path, body, stream=True) as response:
            watched = Watched(response, self, self._clock)
            try:
                yield watched
            except Exception:
                if watched.gone:
                    raise self._gone_error() from None
                raise
            finally:
                watched.stop()
            if watched.gone:
                raise self._gone_error()

    def _gone_error(self) -> BackendError:
        return BackendError(
            f"{self.base_url}: the server went silent mid-answer and no longer accepts connections",
            hint="it is shutting down or was stopped",
        )

    def listening(self) -> bool | None:
        """Whether anything accepts a connection at the server's address now:
        False only when the connection is refused; None when it cannot tell."""
        url = self._client.base_url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            with socket.create_connection((host, port), timeout=min(2.0, self.timeout)):
                return True
        except ConnectionRefusedError:
            return False
        except OSError as exc:
            return False if exc.errno == errno.ECONNREFUSED else None

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise BackendError(f"{self.base_url}{path} did not answer with JSON") from None

    @contextmanager
    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, *, stream: bool = False
    ) -> Iterator[httpx.Response]:
        response = self._send_with_retries(method, path, body, stream)
        try:
            yield response
        except httpx.TimeoutException:
            raise self._timeout_error(path) from None
        except httpx.TransportError as exc:
            raise BackendError(f"{self.base_url}{path}: the connection broke ({_reason(exc)})") from None
        finally:
            response.close()

    def _send_with_retries(self, method: str, path: str, body: dict[str, Any] | None, stream: bool) -> httpx.Response:
        started = self._clock()
        lost: float | None = None  # when the connection first failed (the reconnect window starts then)
        attempt = 0
        while True:
            busy: httpx.Response | None = None
            try:
                request = self._client.build_request(method, path, json=body)
                response = self._client.send(request, stream=stream)
            except httpx.ConnectTimeout:
                failure = "the connection timed out"
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
                raise self._timeout_error(path) from None
            except httpx.ConnectError as exc:
                failure = f"cannot connect ({_reason(exc)})"
            except httpx.TransportError as exc:
                # reset, or dropped before any answer: nothing was delivered, so it can be asked again
                failure = f"the connection broke ({_reason(exc)})"
            else:
                self._reached = True
                if response.status_code < 400:
                    return response
                response.read()
                response.close()
                if not _retryable(response):
                    raise self._status_error(path, response, attempt + 1)
                busy = response
            now = self._clock()
            delay = self._delay(attempt, busy)
            if busy is not None:
                spent, window = now - started, self.timeout
            else:
                lost = now if lost is None else lost
                spent, window = now - lost, self.reconnect_window if self._reached else 0.0
            if spent + delay > window:
                if busy is not None:
                    raise self._status_error(path, busy, attempt + 1)
                assert lost is not None  # set above: this failure was no answer at all
                after = f" (tried {attempt + 1} times in {now - lost:.1f} s)" if attempt else ""
                hint = (
                    "it answered before: has it stopped?"
                    if self._reached
                    else "is the server running, and is base_url right?"
                )
                raise BackendError(f"{self.base_url}: {failure}{after}", hint=hint)
            if self.cancelled.is_set():
                raise KeyboardInterrupt
            self._sleep(delay)
            attempt += 1

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        delay: float = min(MAX_BACKOFF, self.backoff * 2**attempt)  # int ** int is typed Any
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                delay = min(MAX_RETRY_AFTER, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return delay

    def _timeout_error(self, path: str) -> BackendError:
        return BackendError(
            f"{self.base_url}{path} did not answer within {self.timeout:g} s",
            hint="the server may be overloaded; raise 'timeout' in the model's registry entry",
        )

    def _status_error(self, path: str, response: httpx.Response, tries: int) -> ServerError:
        detail = error_detail(response)
        status = f"{response.status_code} {response.reason_phrase}".strip()
        after = f" after {tries} tries" if tries > 1 else ""
        hint = None
        if response.status_code in (401, 403):
            hint = "set the API key: 'api_key_env' in the registry entry, or MARCO_API_KEY with --backend"
        message = f"{self.base_url}{path} answered {status}{after}" + (f": {detail}" if detail else "")
        return ServerError(message, status=response.status_code, detail=detail, hint=hint)


class Watched:
    """A streamed response whose silence is watched by a helper thread.

    The thread wakes every ``stall_probe_every`` seconds; once no line has
    come for ``stall_probe_after`` seconds it asks ``Http.listening``. A
    refused connection ends the stream: the socket is shut down under the
    reader, whose blocked read then returns, and ``gone`` says why. A set
    ``Http.cancelled`` ends it the same way (without ``gone``)."""

    def __init__(self, response: httpx.Response, http: Http, clock: Callable[[], float]) -> None:
        self.response = response
        self.gone = False
        self._http = http
        self._clock = clock
        self._last = clock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="marco-stall-watch", daemon=True)
        self._thread.start()

    def iter_lines(self) -> Iterator[str]:
        for line in self.response.iter_lines():
            self._last = self._clock()
            yield line

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        every, after = self._http.stall_probe_every, self._http.stall_probe_after
        while not self._done.wait(every):
            if self._http.cancelled.is_set():
                # Ctrl-C, or another request of the batch failed: a silent
                # stream must not hold the caller until the server speaks.
                self._cut()
                return
            if self._clock() - self._last < after or self._http.listening() is not False:
                continue
            if self._done.is_set():
                return
            self.gone = True
            self._cut()
            return

    def _cut(self) -> None:
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the reader's recv returns at once
            except OSError:
                pass


def _retryable(response: httpx.Response) -> bool:
    code = response.status_code
    if code == 429:
        return True
    if code < 500 or code in NOT_RETRIED:
        return False
    # A server that cannot give logprobs (or decode a token) says so with a
    # 500; asking again will not help.
    detail = error_detail(response).lower()
    return not any(word in detail for word in ("logprob", "logits_all", "decode"))


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[-1][:120] if text else type(exc).__name__
