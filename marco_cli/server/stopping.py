"""Ending a request's generation or search early: its client went away, its
time is up, or the server is shutting down.

Each request carries a ``Ticket``. The model runs behind a ``StoppableBackend``
that checks the running request's ticket before each call and on every
generated token, and raises ``RequestStopped`` there. That is a
``KeyboardInterrupt`` on purpose: the reasoner and the search already end on
Ctrl-C the anytime way (the text so far, the best path so far) and the
backends give back what the interrupted call took, so a stopped request leaves
the model as clean as Ctrl-C leaves it. Between search iterations the search
also asks ``Ticket.should_stop`` and ends gracefully.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from .schema import RequestError

if TYPE_CHECKING:
    from ..backends.base import Backend, BackendStats, Continuation, Handle, ModelInfo, Request, TokenCallback


class Halt(str, Enum):
    GONE = "client_gone"
    TIME = "time_limit"
    SHUTDOWN = "shutdown"


class RequestStopped(KeyboardInterrupt):
    """Raised inside a model call whose request must end now."""


class Ticket:
    """One request's stop state; set from the event loop, read by the worker."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds
        self.deadline: float | None = None
        self.reason: Halt | None = None

    def start(self) -> None:
        """The request begins to run: its wall clock starts now."""
        if self.seconds is not None:
            self.deadline = time.monotonic() + self.seconds

    def stop(self, reason: Halt) -> None:
        # No lock: Ctrl-C's handler calls this on the main thread, which may be
        # inside this very method; the first reason set is kept, near enough.
        if self.reason is None:
            self.reason = reason

    def should_stop(self) -> bool:
        if self.reason is None and self.deadline is not None and time.monotonic() >= self.deadline:
            self.stop(Halt.TIME)
        return self.reason is not None

    def check(self) -> None:
        if self.should_stop():
            raise RequestStopped

    def error(self) -> RequestError:
        """What a client hears about a request stopped without an answer."""
        if self.reason is Halt.SHUTDOWN:
            return shutting_down()
        if self.reason is Halt.GONE:
            return client_gone()
        return RequestError(
            504,
            f"the request ran past this server's limit of {self.seconds:g} s "
            "(its operator can raise it: marco serve --limit seconds=N)",
            kind="server_error",
            code="time_limit",
        )


def shutting_down() -> RequestError:
    return RequestError(503, "the server is shutting down", kind="server_error", code="shutting_down")


def client_gone() -> RequestError:
    return RequestError(499, "the client closed the request", code="client_closed_request")


class StoppableBackend:
    """The model's backend, with the running request's ticket checked on the way.

    ``load`` gives the real backend (loading it on first use). One worker
    thread runs requests, so one ticket is current at a time.
    """

    def __init__(self, load: Callable[[], Backend], close: Callable[[], None]) -> None:
        self._load = load
        self._close = close
        self.ticket: Ticket | None = None

    @property
    def inner(self) -> Backend:
        return self._load()

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    @property
    def stats(self) -> BackendStats:
        return self.inner.stats

    def _check(self) -> None:
        if self.ticket is not None:
            self.ticket.check()

    def root(self, prompt_tokens: Sequence[int]) -> Handle:
        # Only a stop already decided ends a request here; the time limit is
        # checked on generated tokens, where the reasoner keeps what it has,
        # so a request cut by time always gets its answer so far (maybe empty).
        if self.ticket is not None and self.ticket.reason is not None:
            raise RequestStopped
        handle = self.inner.root(prompt_tokens)
        if self.ticket is not None and self.ticket.reason is not None:
            self.inner.release(handle)
            raise RequestStopped
        return handle

    def extend(self, requests: Sequence[Request], on_token: TokenCallback | None = None) -> list[Continuation]:
        self._check()
        if self.ticket is None:
            return self.inner.extend(requests, on_token)
        check = self.ticket.check

        def watched(index: int, piece: str) -> None:
            check()
            if on_token is not None:
                on_token(index, piece)

        return self.inner.extend(requests, watched)

    def close(self) -> None:
        self._close()

    def __getattr__(self, name: str) -> Any:  # tokenize, detokenize, release, ...
        return getattr(self.inner, name)
