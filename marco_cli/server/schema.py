"""The request side of the OpenAI chat API that ``marco serve`` reads, and how
a request becomes marco's question, history and settings.

Top-level fields marco does not use (``frequency_penalty``, ``user``, ...) are
accepted and ignored, as OpenAI-compatible servers do; the ``marco`` object
(search options) is strict, so a typo there is an error, not a silent default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..core.settings import SPEC, GenerationSettings, Mode, SearchSettings
from ..core.spec import SettingError, Surface
from ..formats.prompts import Message
from .limits import MAX_DELIMITER_CHARS, ServerLimits, over_limit


class RequestError(Exception):
    """A request marco cannot serve; becomes an OpenAI-style JSON error."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


def _marco_options() -> type[BaseModel]:
    """Search options under ``"marco"``: every setting the spec exposes to
    requests, named as the flags are (``max_depth`` for ``--max-depth``).
    Types only here; the values are checked by the settings themselves."""
    fields: dict[str, Any] = {s.key: (s.kind | None, None) for s in SPEC.on(Surface.REQUEST)}
    return create_model("MarcoOptions", __config__=ConfigDict(extra="forbid"), **fields)


if TYPE_CHECKING:  # a model built at run time; to a type checker, a model whose fields are not known

    class MarcoOptions(BaseModel):
        def __getattr__(self, name: str) -> Any: ...

else:
    MarcoOptions = _marco_options()


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    n: int | None = None
    marco: MarcoOptions | None = None


@dataclass(frozen=True)
class ChatCall:
    """A request in marco's terms."""

    model_id: str  # the canonical id (NAME or NAME+preset) of what answers
    mode: Mode
    question: str
    history: tuple[Message, ...]
    generation: GenerationSettings
    search: SearchSettings
    stream: bool
    include_usage: bool
    stand_in: bool = False  # asked by the name of the registry default, which is not on disk


def parse_request(data: Any) -> ChatRequest:
    if not isinstance(data, dict):
        raise RequestError(400, "the request body must be a JSON object", code="invalid_json")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise RequestError(
            422, f"{where}: {first.get('msg', 'invalid value')}", code="invalid_value", param=where
        ) from None


def _text(message: ChatMessage, index: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.type != "text" or part.text is None:
            raise RequestError(
                400,
                f"messages.{index}: only text content is supported, not '{part.type}'",
                code="unsupported_content",
                param=f"messages.{index}.content",
            )
        parts.append(part.text)
    return "".join(parts)


def conversation(messages: list[ChatMessage]) -> tuple[str | None, tuple[Message, ...], str]:
    """(system prompt, earlier turns, the question). System and developer
    messages form the system prompt; the last message must be the user's."""
    system: list[str] = []
    turns: list[Message] = []
    for i, message in enumerate(messages):
        text = _text(message, i)
        if message.role in ("system", "developer"):
            system.append(text)
        else:
            turns.append(Message(message.role, text))
    if not turns or turns[-1].role != "user":
        raise RequestError(400, "the last message must be the user's question", param="messages")
    return ("\n\n".join(system) or None), tuple(turns[:-1]), turns[-1].content


def check_limits(req: ChatRequest, limits: ServerLimits) -> None:
    """Refuse what is above the server's limits, naming the field and the limit."""

    def refuse(param: str, value: float, limit: float, name: str) -> None:
        if value > limit:
            raise RequestError(400, over_limit(param, value, limit, name), code="over_limit", param=param)

    refuse("messages", len(req.messages), limits.messages, "messages")
    if req.seed is not None and req.seed >= 2**63:  # a remote server takes at most a 64-bit seed
        raise RequestError(400, "seed must be below 2**63", code="invalid_value", param="seed")
    for param in ("max_tokens", "max_completion_tokens"):
        value = getattr(req, param)
        if value is not None:
            refuse(param, value, limits.max_tokens, "max_tokens")
    marco = req.marco
    if marco is None:
        return
    for param, name in (
        ("simulations", "simulations"),
        ("children", "children"),
        ("max_depth", "max_depth"),
        ("step_max_tokens", "max_tokens"),
        ("budget", "seconds"),
    ):
        value = getattr(marco, param)
        if value is not None:
            refuse(f"marco.{param}", value, getattr(limits, name), name)
    if marco.delimiter is not None and len(marco.delimiter) > MAX_DELIMITER_CHARS:
        raise RequestError(
            400,
            f"marco.delimiter is longer than {MAX_DELIMITER_CHARS} characters",
            code="over_limit",
            param="marco.delimiter",
        )


def to_call(
    req: ChatRequest,
    model_id: str,
    mode: Mode,
    base_generation: GenerationSettings,
    base_search: SearchSettings,
    limits: ServerLimits | None = None,
    *,
    stand_in: bool = False,
) -> ChatCall:
    """``base_*`` hold the server's defaults; what the request sets replaces them."""
    if req.n not in (None, 1):
        raise RequestError(400, "n must be 1: marco returns one answer per request", param="n")
    if limits is not None:
        check_limits(req, limits)
    system, history, question = conversation(req.messages)
    # 0 is refused below, as on the command line (not read as "the default").
    max_tokens_field = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    top = {
        "temperature": req.temperature,
        "top-p": req.top_p,
        "seed": req.seed,
        "max-tokens": req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens,
    }
    values = {name: v for name, v in top.items() if v is not None}
    params = {name: SPEC[name].openai or name for name in values}
    params["max-tokens"] = max_tokens_field
    options: dict[str, Any] = req.marco.model_dump(exclude_none=True) if req.marco else {}
    for key, value in options.items():
        name = key.replace("_", "-")
        values[name], params[name] = value, f"marco.{key}"
    try:
        generation = SPEC.apply(base_generation, values)
        if system is not None:
            generation = replace(generation, system=system)
        search = SPEC.apply(base_search, values)
    except SettingError as exc:
        param = params.get(exc.name, exc.name)
        # "where: what", as the server words a malformed field (parse_request)
        raise RequestError(400, f"{param}: {exc}", code="invalid_value", param=param) from None
    return ChatCall(
        model_id=model_id,
        mode=mode,
        question=question,
        history=history,
        generation=generation,
        search=search,
        stream=req.stream,
        include_usage=bool(req.stream_options and req.stream_options.include_usage),
        stand_in=stand_in,
    )
