"""HTTP to an OpenAI-compatible server: auth, timeouts, retries, one-line errors.

Transient failures (connection refused or reset, 429, 5xx) are retried with
exponential backoff (``Retry-After`` honoured, capped); a read timeout is not
retried (it already waited the whole timeout). Every failure becomes a
``BackendError`` that names the server and says what to do. No llama_cpp here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ..core.errors import BackendError

NOT_RETRIED = {501, 505}  # 5xx that no retry can fix
MAX_BACKOFF = 8.0  # seconds, between two tries
MAX_RETRY_AFTER = 30.0  # a server asking for longer gets this much


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
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.cancelled = threading.Event()  # set: waits between retries end at once
        self._sleep = sleep
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
    def stream(self, path: str, body: dict[str, Any]) -> Iterator[httpx.Response]:
        """POST and hold the response open (server-sent events); closing it tells
        the server to stop generating."""
        with self._send("POST", path, body, stream=True) as response:
            yield response

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise BackendError(f"{self.base_url}{path} did not answer with JSON") from None

    @contextmanager
    def _send(self, method: str, path: str, body: dict[str, Any] | None, *, stream: bool = False) -> Iterator[httpx.Response]:
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
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                request = self._client.build_request(method, path, json=body)
                response = self._client.send(request, stream=stream)
            except httpx.ConnectTimeout:
                failure = "the connection timed out"
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
                raise self._timeout_error(path) from None
            except httpx.TransportError as exc:
                failure = f"cannot connect ({_reason(exc)})"
            else:
                if response.status_code < 400:
                    return response
                response.read()
                response.close()
                if last or not _retryable(response):
                    raise self._status_error(path, response, attempt + 1)
                self._wait(attempt, response)
                continue
            if last:
                raise BackendError(
                    f"{self.base_url}: {failure}",
                    hint="is the server running, and is base_url right?",
                )
            self._wait(attempt, None)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, response: httpx.Response | None) -> None:
        delay = min(MAX_BACKOFF, self.backoff * 2**attempt)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                delay = min(MAX_RETRY_AFTER, max(0.0, float(retry_after)))
            except ValueError:
                pass
        if self.cancelled.is_set():
            raise KeyboardInterrupt
        self._sleep(delay)

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
