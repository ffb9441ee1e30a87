"""``marco serve``: marco's reasoning behind an OpenAI-compatible HTTP API."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.errors import MarcoError, UsageError
from ..models.registry import load_registry, resolve
from ..reasoner import Reasoner, choose_model
from ..ui.console import notice
from . import _options as o

if TYPE_CHECKING:
    from ..server.access import AccessPolicy
    from ..server.service import ChatService


@o.settings_flags(without=("mode",))  # each request picks its mode by model id
def serve(
    host: Annotated[
        str,
        typer.Option(
            "--host", metavar="ADDRESS", help="Address to listen on (0.0.0.0: every interface; set --api-key then)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to listen on (0: any free port).")] = 8000,
    max_queue: Annotated[
        int, typer.Option("--max-queue", metavar="N", help="Requests that may wait for the model; more get 503.")
    ] = 16,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            metavar="KEY",
            envvar="MARCO_API_KEY",
            help="Require this key from clients (Authorization: Bearer KEY); also MARCO_API_KEY.",
            show_default=False,
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="Also accept requests whose Host is NAME (a proxy's public name; '*': any). Repeatable.",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    cors: Annotated[
        list[str] | None,
        typer.Option(
            "--cors",
            help="Let web pages from ORIGIN (https://app.example) call the server; '*': any. Repeatable.",
            show_default=False,
            metavar="ORIGIN",
        ),
    ] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            "--limit",
            help="Raise or lower a per-request limit: body-bytes, messages, max-tokens, simulations, children, max-depth, seconds. Repeatable.",
            show_default=False,
            metavar="NAME=N",
        ),
    ] = None,
    *,
    flags: o.Flags,
) -> None:
    """Serve the model over HTTP: POST /v1/chat/completions, GET /v1/models.

    Model ids: NAME answers by chain of thought, NAME+mcts by tree search,
    NAME+mcts-quick and the other listed presets by a preset search (search
    options per request under "marco"). The generation and search flags are
    the defaults of requests that do not set them.
    """
    if max_queue < 0:
        raise UsageError(f"--max-queue must be >= 0, got {max_queue}")
    runtime, generation, search = flags.runtime(), flags.generation(), flags.search()
    from ..server.access import AccessPolicy  # fastapi and uvicorn load only for this command
    from ..server.limits import ServerLimits

    limits = ServerLimits.parse(limit or [])
    policy = AccessPolicy.create(host, allow_host or [], cors or [], api_key)
    # Bind before anything slow or chatty: a bad or taken port is the first error.
    sock = listen(host, port)
    service = None
    stopped_by: int | None = None
    try:
        m = flags.model_settings
        registry = load_registry(m.models)
        choice = choose_model(registry, m.model, backend=m.backend)
        if choice.notice:
            notice(choice.notice)
        from ..server.service import ChatService, StandIn

        # Without -m, clients that ask for the registry default (the README's
        # "marco-o1") get the fallback model, and are told so in each reply.
        stand_in = None
        if m.model is None and not m.backend and choice.model.name != registry.default:
            stand_in = StandIn(resolve(registry, registry.default))
        service = ChatService(
            Reasoner(choice.model, runtime),
            generation=generation,
            search=search,
            max_queue=max_queue,
            limits=limits,
            stand_in=stand_in,
            note=notice,
        )
        service.load()
        stopped_by = run_server(service, sock, policy, verbose=runtime.verbose)
    finally:
        sock.close()
        if service is not None:
            service.close()
    if stopped_by == signal.SIGINT:
        raise KeyboardInterrupt  # the one "marco: interrupted" line and exit 130
    if stopped_by == signal.SIGTERM:
        # A service manager asked: end the way it expects, by the signal itself,
        # now that the running request has its reply and the model is closed.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


def listen(host: str, port: int) -> socket.socket:
    """Bind here, so a taken port is a one-line error and ``--port 0`` works."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(f"--host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = "the address is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise MarcoError(f"cannot listen on {host}:{port}: {why}") from None
    return sock


def run_server(service: ChatService, sock: socket.socket, policy: AccessPolicy, *, verbose: bool) -> int | None:
    """Serve until Ctrl-C or SIGTERM; returns which signal ended it (None if none did)."""
    import uvicorn

    from ..server.app import create_app

    class Server(uvicorn.Server):
        stopped_by: int | None = None

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn would raise the caught signal again after its shutdown,
            # through asyncio's own SIGINT handler; once (in CI, not reproduced
            # in 40 tries here) Ctrl-C ended with exit 130 but without the
            # "interrupted" line. Here the signal is only recorded, and the
            # command ends by it once the model is closed (serve() above).
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Ctrl-C: the running request stops now and its client gets a JSON
            # error, so uvicorn's graceful wait is short and nothing is cancelled.
            service.begin_shutdown()
            if self.stopped_by is None:
                self.stopped_by = sig
            super().handle_exit(sig, frame)

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if policy.api_key is None and not _loopback(host):
        notice(f"listening on {shown} without an API key: anyone who reaches this port can use the model (--api-key)")
    notice(f"serving {', '.join(service.model_ids)} on http://{shown}:{port}/v1 (Ctrl-C stops)")
    config = uvicorn.Config(
        create_app(service, policy),
        log_level="info" if verbose else "warning",
        access_log=verbose,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = Server(config)
    server.run(sockets=[sock])
    return server.stopped_by


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
