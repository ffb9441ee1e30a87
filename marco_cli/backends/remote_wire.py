"""What OpenAI-compatible servers send back from ``/v1/completions``, read into
one shape: per generated token its id (when the server tells it), its exact
bytes (when it tells them), its log-probability and the top-5 log-probabilities.

Two logprobs layouts exist:

- llama.cpp's ``llama-server``: ``logprobs.content = [{id, token, bytes,
  logprob, top_logprobs: [{id, token, bytes, logprob}]}]``;
- the legacy OpenAI layout (vLLM, llama-cpp-python's server):
  ``logprobs = {tokens, token_logprobs, top_logprobs: [{token: logprob}]}``,
  where vLLM writes ``token_id:N`` for a token when asked
  (``return_tokens_as_token_ids``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..core.errors import BackendError

TOP_CONFIDENCE = 5  # Marco-o1 v1, eq. 1: the normaliser is the top-5 tokens
_TOKEN_ID = re.compile(r"^token_id:(\d+)$")


class NoLogprobs(BackendError):
    """The server generated text without the log-probabilities the search scores."""


@dataclass(frozen=True)
class TokenEntry:
    id: int | None  # None when the server only gives the token's text
    piece: bytes | None  # the token's exact bytes, when the server gives them
    text: str  # the token's text as the server wrote it (may drop split UTF-8)
    logprob: float
    top: tuple[float, ...]  # log-probabilities of the top candidates, any order


@dataclass(frozen=True)
class Chunk:
    """One completion response, or one streamed event of it."""

    text: str
    entries: tuple[TokenEntry, ...] | None  # None: the server sent no logprobs
    finish: str | None  # "stop", "length", or None while streaming


def confidence(entry: TokenEntry) -> float:
    """``c = exp(l) / sum_{k<=5} exp(l_k)`` (paper eq. 1) from the server's numbers.

    The five largest log-probabilities the server listed form the normaliser
    (llama-cpp-python and vLLM add the sampled token to the list when it is not
    among the top 5; it is then the smallest and drops out). The softmax
    normaliser over the vocabulary cancels, as with raw logits locally.
    llama-cpp-python keys its list by token text, so two candidates with the
    same text count once: the normaliser is then a little small."""
    top = sorted((t for t in entry.top if math.isfinite(t)), reverse=True)[:TOP_CONFIDENCE]
    if not math.isfinite(entry.logprob) or not top:
        return 0.0
    shift = max(top[0], entry.logprob)
    denom = sum(math.exp(t - shift) for t in top)
    return min(1.0, math.exp(entry.logprob - shift) / denom)


def _token_id(item: Any) -> int | None:
    if isinstance(item, str):
        match = _TOKEN_ID.match(item)
        return int(match.group(1)) if match else None
    return None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return -math.inf
    return float(value)


def _llama_server_entries(items: list[Any]) -> tuple[TokenEntry, ...]:
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        raw = item.get("bytes")
        piece = bytes(raw) if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw) else None
        tid = item.get("id")
        tops = item.get("top_logprobs") or []
        out.append(
            TokenEntry(
                id=tid if isinstance(tid, int) and not isinstance(tid, bool) else None,
                piece=piece,
                text=str(item.get("token") or ""),
                logprob=_number(item.get("logprob")),
                top=tuple(_number(t.get("logprob")) for t in tops if isinstance(t, dict)),
            )
        )
    return tuple(out)


def _legacy_entries(logprobs: dict[str, Any]) -> tuple[TokenEntry, ...]:
    tokens = logprobs.get("tokens") or []
    values = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or []
    out = []
    for i, token in enumerate(tokens):
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        out.append(
            TokenEntry(
                id=_token_id(token),
                piece=None,
                text="" if _token_id(token) is not None else str(token),
                logprob=_number(values[i] if i < len(values) else None),
                top=tuple(_number(v) for v in top.values()),
            )
        )
    return tuple(out)


def parse_choice(data: Any) -> Chunk:
    """The first choice of a ``/v1/completions`` response (or streamed event)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        if isinstance(data, dict) and "error" in data:
            err = data["error"]
            message = err.get("message") if isinstance(err, dict) else err
            raise BackendError(f"the server reported an error while generating: {message}")
        raise BackendError("the server's completion response has no 'choices'")
    if not choices:
        return Chunk("", (), None)  # e.g. a usage-only event
    choice = choices[0] if isinstance(choices[0], dict) else {}
    text = choice.get("text")
    text = text if isinstance(text, str) else ""
    finish = choice.get("finish_reason")
    logprobs = choice.get("logprobs")
    entries: tuple[TokenEntry, ...] | None = None
    if isinstance(logprobs, dict):
        content = logprobs.get("content")
        if isinstance(content, list):
            entries = _llama_server_entries(content)
        elif "tokens" in logprobs:
            entries = _legacy_entries(logprobs)
    elif not text:
        entries = ()  # a closing event: nothing generated, nothing to score
    if entries and all(not e.top for e in entries):
        entries = None  # logprobs without the top candidates: cannot score
    return Chunk(text, entries, finish if isinstance(finish, str) else None)


def sse_events(lines: Iterable[str]) -> Iterator[Any]:
    """The JSON payloads of a server-sent-events stream, up to ``[DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # comments (": ping"), event names, blank separators
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        if not payload:
            continue
        try:
            yield json.loads(payload)
        except ValueError:
            raise BackendError(f"the server sent a malformed event: {payload[:80]!r}") from None


def spread(values: list[float], n: int) -> list[float]:
    """``values`` resampled to ``n`` entries (index-proportional); unchanged
    when the lengths agree. Used when the server's tokens are not ours."""
    if len(values) == n:
        return list(values)
    if not values:
        return [0.0] * n
    return [values[min(len(values) - 1, j * len(values) // n)] for j in range(n)]
