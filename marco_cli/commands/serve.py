"""``marco serve``: marco's reasoning behind an OpenAI-compatible HTTP API."""

from __future__ import annotations

import errno
import socket
from typing import Annotated

import typer

from ..core.errors import MarcoError, UsageError
from ..reasoner import Reasoner
from ..ui.console import notice
from . import _options as o


@o.settings_flags(without=("mode",))  # each request picks its mode by model id
def serve(
    host: Annotated[str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on (0.0.0.0: every interface; there is no authentication).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to listen on (0: any free port).")] = 8000,
    max_queue: Annotated[int, typer.Option("--max-queue", metavar="N", help="Requests that may wait for the model; more get 503.")] = 16,
    *,
    flags: o.Flags,
) -> None:
    """Serve the model over HTTP: POST /v1/chat/completions, GET /v1/models.

    Model ids: NAME answers by chain of thought, NAME+mcts by tree search (search
    options per request under "marco"). The generation and search flags are the
    defaults of requests that do not set them.
    """
    if max_queue < 0:
        raise UsageError(f"--max-queue must be >= 0, got {max_queue}")
    runtime, generation, search = flags.runtime(), flags.generation(), flags.search()
    verbose = runtime.verbose
    # Bind before anything slow or chatty: a bad or taken port is the first error.
    sock = listen(host, port)
    service = None
    try:
        choice = o.choose(flags)
        if choice.notice:
            notice(choice.notice)
        from ..server.service import ChatService  # fastapi and uvicorn load only for this command

        service = ChatService(Reasoner(choice.model, runtime), generation=generation, search=search, max_queue=max_queue)
        service.load()
        run_server(service, sock, verbose=verbose)
    finally:
        sock.close()
        if service is not None:
            service.close()


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


def run_server(service, sock: socket.socket, *, verbose: bool) -> None:
    import uvicorn

    from ..server.app import create_app

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    notice(f"serving {', '.join(service.model_ids)} on http://{shown}:{port}/v1 (Ctrl-C stops)")
    config = uvicorn.Config(
        create_app(service), log_level="info" if verbose else "warning",
        access_log=verbose, lifespan="off", timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
