"""Reading a request body: bounded in bytes, strict JSON.

The body is read chunk by chunk and refused as soon as it passes the limit, so
a huge upload never sits in memory. JSON is parsed strictly: ``NaN`` and
``Infinity`` (which Python's json accepts) and numbers that overflow a float
are errors, as is nesting too deep for the parser; each is a 400, never a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request

from .schema import RequestError


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return loads(b"".join(chunks))


def loads(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise RequestError(400, "the request body is nested too deeply", code="invalid_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the request body is not valid JSON ({exc})", code="invalid_json") from None


def too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        f"the request body is larger than this server's limit of {limit:,} bytes "
        "(its operator can raise it: marco serve --limit body-bytes=N)",
        code="body_too_large",
    )


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value
