"""Who may call ``marco serve``: checked before any route runs.

A web page the user visits can send requests to ``localhost``, and through DNS
rebinding even read the answers. So, in this order:

1. ``Host`` must name this server: ``localhost``, a loopback address, the
   address it is bound to (any IP address when bound to all interfaces: a
   rebinding page always arrives under its own domain name), or a name the
   operator allowed with ``--allow-host`` (a proxy's public name; ``*`` turns
   the check off).
2. A request with an ``Origin`` (browsers add it to cross-origin requests) is
   refused unless ``--cors`` allowed that origin; allowed origins get the CORS
   headers and their preflight ``OPTIONS`` answered.
3. With an API key set (``--api-key`` / ``MARCO_API_KEY``), every route but
   ``/health`` needs ``Authorization: Bearer KEY``.
4. A ``POST`` must be ``Content-Type: application/json`` (the only body a
   browser form or a plain ``fetch`` cannot send without a preflight).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import UsageError
from .schema import RequestError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
OPEN_PATHS = frozenset({"/health"})  # no API key needed (load-balancer checks)
CORS_MAX_AGE = "600"


@dataclass(frozen=True)
class AccessPolicy:
    hosts: frozenset[str] = LOOPBACK_NAMES
    any_ip: bool = False  # bound to every interface: any IP-address Host
    origins: frozenset[str] = frozenset()
    api_key: str | None = None

    @classmethod
    def create(
        cls, bound: str, allow_hosts: Iterable[str] = (), cors: Iterable[str] = (), api_key: str | None = None
    ) -> AccessPolicy:
        hosts = {name for name in (_host_name(h) for h in allow_hosts) if name}
        bound_name = _host_name(bound)
        origins = {_origin(o) for o in cors}
        if api_key is not None and not api_key.strip():
            raise UsageError("the API key is empty (--api-key or MARCO_API_KEY)")
        return cls(
            hosts=frozenset(LOOPBACK_NAMES | hosts | ({bound_name} if bound_name not in WILDCARD_ADDRESSES else set())),
            any_ip=bound_name in WILDCARD_ADDRESSES,
            origins=frozenset(origins),
            api_key=api_key,
        )

    def host_allowed(self, host: str | None) -> bool:
        if host is None or "*" in self.hosts:
            return True  # no Host (HTTP/1.0): no browser sends such a request
        name = _host_name(host)
        return name in self.hosts or (self.any_ip and _is_ip(name))

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.origins or origin.rstrip("/").lower() in self.origins

    def key_ok(self, authorization: str | None) -> bool:
        if self.api_key is None:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        return hmac.compare_digest(given, self.api_key.encode())


class AccessGuard:
    """ASGI middleware applying an ``AccessPolicy`` to every HTTP request."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        headers = Headers(scope=scope)
        method, path = scope["method"], scope["path"]
        origin = headers.get("origin")
        if not policy.host_allowed(headers.get("host")):
            return await _refuse(
                scope,
                receive,
                send,
                RequestError(
                    403,
                    f"the Host {headers.get('host')!r} is not this server's name (the operator can allow it: "
                    "marco serve --allow-host NAME)",
                    code="host_not_allowed",
                ),
            )
        if origin is not None and not policy.origin_allowed(origin):
            return await _refuse(
                scope,
                receive,
                send,
                RequestError(
                    403,
                    f"cross-origin requests from {origin!r} are refused (the operator can allow it: "
                    "marco serve --cors ORIGIN)",
                    code="origin_not_allowed",
                ),
            )
        cors = _cors_headers(origin, policy) if origin is not None else {}
        if method == "OPTIONS" and origin is not None and "access-control-request-method" in headers:
            await Response(status_code=204, headers=cors)(scope, receive, send)
            return
        if path not in OPEN_PATHS and not policy.key_ok(headers.get("authorization")):
            return await _refuse(
                scope,
                receive,
                send,
                RequestError(401, "a valid API key is required (Authorization: Bearer KEY)", code="invalid_api_key"),
                {**cors, "WWW-Authenticate": "Bearer"},
            )
        if method == "POST" and _media_type(headers.get("content-type")) != "application/json":
            return await _refuse(
                scope,
                receive,
                send,
                RequestError(
                    415,
                    "the request body must be sent as Content-Type: application/json",
                    code="unsupported_media_type",
                ),
                cors,
            )
        if not cors:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in cors.items()
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, error: RequestError, headers: dict[str, str] | None = None
) -> None:
    await JSONResponse(error.to_json(), status_code=error.status, headers=headers)(scope, receive, send)


def _cors_headers(origin: str, policy: AccessPolicy) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": "*" if "*" in policy.origins else origin,
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": CORS_MAX_AGE,
        "Vary": "Origin",
    }


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _host_name(host: str) -> str:
    """``Host`` header (or a bound address) without the port, lower case."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _origin(value: str) -> str:
    value = value.strip().rstrip("/").lower()
    if value == "*":
        return value
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
        raise UsageError(
            f"--cors takes an origin like https://app.example.com (scheme, host, optional port) or '*', got {value!r}"
        )
    return value
