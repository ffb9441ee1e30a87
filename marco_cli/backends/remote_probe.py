"""What an OpenAI-compatible server speaks, learned once when marco connects:
its model id, its tokenizer endpoints (the dialect), its context size and chat
template when it tells them, the end-of-turn token ids, and whether
``/v1/completions`` returns logprobs (a clear error now beats one mid-search).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..core.errors import BackendError
from .remote_http import Http, ServerError
from .remote_target import RemoteTarget
from .remote_wire import NoLogprobs, parse_choice

PROBE_TEXT = "Hello"
_END_TEXTS = ("<|im_end|>", "<|endoftext|>")  # ChatML end markers (docs/algorithm.md section 1)
_MISSING = (404, 405, 501)  # "no such endpoint"
MARKER = re.compile(r"<[^<>\s]{1,64}>|\[[^\[\]\s]{1,64}\]")
"""What a control token looks like in text, in every chat format marco knows."""


class Dialect(str, Enum):
    TOKENS = "tokens"  # /tokenize, /detokenize; token-id prompts (llama-server, vLLM)
    TEXT = "text"  # /extras/tokenize, /extras/detokenize; text prompts (llama-cpp-python)


class Flavour(str, Enum):
    """Which server it is, for the request fields only it understands."""

    LLAMA_SERVER = "llama-server"
    VLLM = "vllm"
    LLAMA_CPP_PYTHON = "llama-cpp-python"


def no_logprobs(base_url: str) -> NoLogprobs:
    return NoLogprobs(
        f"{base_url} does not return token logprobs from /v1/completions; "
        "marco scores every token by its top-5 logprobs",
        hint="use llama-server or vLLM, or start python -m llama_cpp.server with --logits_all true",
    )


@dataclass
class ServerFacts:
    model: str | None  # the model id sent with every request
    flavour: Flavour
    concurrency: int
    n_ctx: int | None = None
    chat_template: str | None = None
    eos_tokens: tuple[int, ...] = ()
    bos: int | None = None  # TEXT: the token its tokenizer puts first, dropped
    pieces: dict[int, bytes] = field(default_factory=dict)  # token id -> exact bytes, as learned
    cache_prompt: bool = False  # llama-server: reuse cached prompt prefixes (values then drift)

    @property
    def dialect(self) -> Dialect:
        return Dialect.TEXT if self.flavour is Flavour.LLAMA_CPP_PYTHON else Dialect.TOKENS

    def sampling_extras(self) -> dict[str, Any]:
        """Completion fields beyond OpenAI's that make the server sample like marco."""
        if self.flavour is Flavour.VLLM:
            return {"return_tokens_as_token_ids": True}  # token ids, not text (vLLM's defaults fit)
        # llama.cpp servers filter with min-p and penalise repeats by default; marco does neither
        extras: dict[str, Any] = {"min_p": 0.0, "repeat_penalty": 1.0}
        if self.flavour is Flavour.LLAMA_SERVER:
            # Its prompt cache (on by default) evaluates a request's last
            # tokens on top of a prefix computed in another batch shape, and
            # the logprobs move with it (README "Servers"): off unless asked.
            extras["cache_prompt"] = self.cache_prompt
        return extras

    def tokenize(self, http: Http, text: str, *, special: bool) -> list[int]:
        """Token ids; ``special=False``: no control token can come out of ``text``.

        llama-server is told so (``parse_special``). vLLM's and llama-cpp-python's
        tokenizers read control tokens in any text, so there each marker-like
        run (``<|im_end|>``, ``[INST]``) is tokenised in pieces, its brackets
        apart from its inside, which no control token can span."""
        if special or self.flavour is Flavour.LLAMA_SERVER or not MARKER.search(text):
            return self._tokenize(http, text, special=special)
        tokens: list[int] = []
        at = 0
        for match in MARKER.finditer(text):
            marker = match.group()
            for piece in (text[at : match.start()], marker[0], marker[1:-1], marker[-1]):
                if piece:
                    tokens += self._tokenize(http, piece, special=special)
            at = match.end()
        if text[at:]:
            tokens += self._tokenize(http, text[at:], special=special)
        return tokens

    def _tokenize(self, http: Http, text: str, *, special: bool) -> list[int]:
        if self.flavour is Flavour.LLAMA_SERVER:
            body = {"content": text, "add_special": False, "parse_special": special, "with_pieces": True}
            data = http.post_json("/tokenize", body)
        elif self.flavour is Flavour.VLLM:
            data = http.post_json("/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False})
        else:  # llama-cpp-python always parses special tokens
            data = http.post_json("/extras/tokenize", {"model": self.model, "input": text})
        tokens = self.read_tokens(data)
        if self.bos is not None and tokens[:1] == [self.bos]:
            tokens = tokens[1:]
        return tokens

    def read_tokens(self, data: Any) -> list[int]:
        raw = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(raw, list):
            raise BackendError("the server's tokenize answer has no 'tokens' list")
        out = []
        item: Any  # an id, or an {"id", "piece"} object that gives one
        for item in raw:
            if isinstance(item, dict):  # llama-server with_pieces: {"id", "piece"}
                item, piece = item.get("id"), item.get("piece")
                if isinstance(item, int) and isinstance(piece, str):
                    self.pieces.setdefault(item, piece.encode("utf-8"))
                elif isinstance(item, int) and isinstance(piece, list):  # bytes of a split character
                    self.pieces.setdefault(item, bytes(b & 0xFF for b in piece if isinstance(b, int)))
            if not isinstance(item, int) or isinstance(item, bool):
                raise BackendError(f"the server's tokenize answer has a token that is not an id: {item!r}")
            out.append(item)
        return out

    def detokenize(self, http: Http, tokens: Sequence[int]) -> str:
        if self.dialect is Dialect.TOKENS:
            data = http.post_json("/detokenize", {"model": self.model, "tokens": list(tokens)})
        else:
            data = self._detokenize_text(http, list(tokens))
        if isinstance(data, dict):
            for key in ("content", "prompt", "text"):  # llama-server, vLLM, llama-cpp-python
                value = data.get(key)
                if isinstance(value, str):
                    return value
        raise BackendError("the server's detokenize answer has no text")

    def _detokenize_text(self, http: Http, tokens: list[int]) -> Any:
        # llama-cpp-python decodes strictly: a character split at the end fails.
        # Drop the incomplete tail, as a lenient decoder would.
        for drop in range(4):
            try:
                return http.post_json(
                    "/extras/detokenize", {"model": self.model, "tokens": tokens[: len(tokens) - drop]}
                )
            except ServerError as exc:
                if "decode" not in exc.detail.lower() or drop == 3 or len(tokens) <= drop + 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def probe_server(http: Http, target: RemoteTarget) -> ServerFacts:
    served = _served_models(http)
    ids = [m["id"] for m in served]
    model = target.model or (ids[0] if ids else None)
    if target.model and ids and target.model not in ids:
        raise BackendError(
            f"{http.base_url} does not serve a model '{target.model}'; it serves: {', '.join(ids[:8])}",
            hint="set 'model' in the registry entry to one of those",
        )
    facts = ServerFacts(model, _flavour(http, model), target.concurrency, cache_prompt=target.cache_prompt)
    card = next((m for m in served if m["id"] == model), {})
    if isinstance(card.get("max_model_len"), int):  # vLLM
        facts.n_ctx = card["max_model_len"]
    if facts.flavour is Flavour.LLAMA_CPP_PYTHON:
        empty = facts.read_tokens(http.post_json("/extras/tokenize", {"model": model, "input": ""}))
        facts.bos = empty[0] if len(empty) == 1 else None
    elif facts.flavour is Flavour.LLAMA_SERVER:
        _read_props(http, facts)
    eos = []
    for text in _END_TEXTS:
        ids_ = facts.tokenize(http, text, special=True)
        if len(ids_) == 1:
            eos.append(ids_[0])
    facts.eos_tokens = tuple(dict.fromkeys(eos))
    _check_logprobs(http, facts)
    return facts


def _served_models(http: Http) -> list[dict[str, Any]]:
    data = http.get_json("/v1/models")
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise BackendError(f"{http.base_url}/v1/models is not an OpenAI-compatible model list")
    return [m for m in items if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _flavour(http: Http, model: str | None) -> Flavour:
    # llama-server reads "content", vLLM "prompt" (and answers with max_model_len);
    # llama-cpp-python has neither endpoint, only /extras/tokenize.
    probes = (
        ("/tokenize", {"model": model, "content": PROBE_TEXT, "prompt": PROBE_TEXT}),
        ("/extras/tokenize", {"model": model, "input": PROBE_TEXT}),
    )
    for path, body in probes:
        try:
            data = http.post_json(path, body)
        except ServerError as exc:
            if exc.status in _MISSING:
                continue
            raise
        if isinstance(data, dict) and isinstance(data.get("tokens"), list):
            if path == "/extras/tokenize":
                return Flavour.LLAMA_CPP_PYTHON
            return Flavour.VLLM if "max_model_len" in data else Flavour.LLAMA_SERVER
    raise BackendError(
        f"{http.base_url} has no tokenizer endpoint (/tokenize or /extras/tokenize)",
        hint="marco counts and continues token paths with the server's tokenizer: "
        "use llama-server, vLLM or python -m llama_cpp.server",
    )


def _read_props(http: Http, facts: ServerFacts) -> None:
    """llama-server's /props: the model's own chat template and the context size."""
    try:
        props = http.get_json("/props")
    except ServerError:
        return  # vLLM has none
    if not isinstance(props, dict):
        return
    if isinstance(props.get("chat_template"), str) and props["chat_template"].strip():
        facts.chat_template = props["chat_template"]
    settings = props.get("default_generation_settings")
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else props.get("n_ctx")
    if isinstance(n_ctx, int) and n_ctx > 0:
        facts.n_ctx = facts.n_ctx or n_ctx


def _check_logprobs(http: Http, facts: ServerFacts) -> None:
    tokens = facts.dialect is Dialect.TOKENS
    body: dict[str, Any] = {
        "model": facts.model,
        "max_tokens": 1,
        "temperature": 0.0,
        "logprobs": 5,
        "stream": False,
        "prompt": facts.tokenize(http, PROBE_TEXT, special=False) if tokens else PROBE_TEXT,
        **facts.sampling_extras(),
    }
    try:
        data = http.post_json("/v1/completions", body)
    except ServerError as exc:
        if "logprob" in exc.detail.lower() or "logits_all" in exc.detail.lower():
            raise no_logprobs(http.base_url) from None
        raise
    chunk = parse_choice(data)
    if chunk.entries is None or (chunk.text and not chunk.entries):
        raise no_logprobs(http.base_url)
