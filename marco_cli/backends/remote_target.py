"""Where a remote model runs, as the remote backend needs to know it. The
registry (``[models.NAME]`` with ``base_url``) and ``--backend URL`` fill it in."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class RemoteTarget:
    """Where a remote model runs: an OpenAI-compatible server (vLLM, llama-server,
    llama-cpp-python's server). ``model`` None: the first model the server lists."""

    base_url: str  # scheme://host[:port][/prefix], without a trailing /v1
    model: str | None = None
    api_key_env: str | None = None  # variable holding the API key; None: MARCO_API_KEY if set
    n_ctx: int | None = None  # None: ask the server, else --ctx
    concurrency: int = DEFAULT_CONCURRENCY  # requests in flight at once
    timeout: float = DEFAULT_TIMEOUT  # seconds to wait for a response (or the next token)
    # llama-server's prompt cache: False (default) re-evaluates every request's
    # whole path, so values do not depend on what the server ran before
    # (README "Servers"); True reuses cached prefixes, faster, values drift.
    cache_prompt: bool = False
