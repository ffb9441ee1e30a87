"""``--backend URL`` without ``-m``: which model does the server run?

The server says: ``/v1/models`` lists its model id (llama-server: the GGUF's
file name or ``--alias``; vLLM: the Hugging Face repo id), and llama-server's
``/props`` adds the model's own chat template and end-of-turn text. The id is
matched against the registry (names, aliases, GGUF file names, repos); a
match brings that entry's prompt and reasoning formats. Anything else runs as
what it is: labelled with the server's id, prompted with the server's chat
template (ChatML when the server has none), in the ``think`` reasoning format
when that template writes ``<think>``, else ``none``. Either way one line
says what was chosen, and the model marco reports is the one the server runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..backends.remote_http import Http, ServerError
from ..backends.remote_target import RemoteTarget
from ..core.errors import BackendError
from ..formats.reasoning import Reasoning
from .registry import ModelEntry, Registry, ResolvedModel
from .registry_match import match_entry, name_keys

PROBE_TIMEOUT = 10.0  # seconds; the real connection later uses the entry's timeout
_CHATML_ENDS = ("<|im_end|>", "<|endoftext|>")


@dataclass(frozen=True)
class ServedModel:
    id: str
    chat_template: str | None = None  # llama-server's /props
    eos_text: str | None = None  # llama-server's /props: the end-of-turn token's text


@dataclass(frozen=True)
class Identified:
    model: ResolvedModel
    notice: str  # one line for stderr: what the server runs and which formats marco uses


def served_model(base_url: str, *, timeout: float = PROBE_TIMEOUT, **http_options: Any) -> ServedModel:
    """The first model ``/v1/models`` lists, and ``/props`` where the server has it."""
    api_key = os.environ.get("MARCO_API_KEY") or None
    http = Http(base_url, api_key=api_key, timeout=timeout, concurrency=1, **http_options)
    try:
        data = http.get_json("/v1/models")
        items = data.get("data") if isinstance(data, dict) else None
        ids = [m["id"] for m in items or () if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if not ids:
            raise BackendError(f"{base_url}/v1/models lists no model")
        try:
            props = http.get_json("/props")
        except ServerError:
            props = None  # vLLM and llama-cpp-python have no /props
        template = eos = None
        if isinstance(props, dict):
            if isinstance(props.get("chat_template"), str) and props["chat_template"].strip():
                template = props["chat_template"]
            if isinstance(props.get("eos_token"), str) and props["eos_token"]:
                eos = props["eos_token"]
        return ServedModel(ids[0], template, eos)
    finally:
        http.close()


def _generic_name(model_id: str) -> str:
    stem = sorted(name_keys(model_id), key=len)[0]
    name = re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-.")
    return name or "served-model"


def identify(registry: Registry, target: RemoteTarget, **http_options: Any) -> Identified:
    """What to run for ``--backend URL`` with no ``-m``: see the module doc."""
    served = served_model(target.base_url, **http_options)
    found = match_entry(registry, served.id)
    where = target.base_url
    if found is not None:
        entry, quant = found  # quant None: the id names the model, not a file (vLLM's repo id)
        model = ResolvedModel(
            entry.name, quant, Path("remote") / entry.name, entry, remote=replace(target, model=served.id)
        )
        return Identified(model, f"{where} runs '{served.id}': using {entry.name}'s prompt format from the registry")
    stop = tuple(dict.fromkeys(((served.eos_text,) if served.eos_text else ()) + _CHATML_ENDS))
    name = _generic_name(served.id)
    # A template that writes <think> is a thinking model's; anything else gets
    # the plain format (asked for a final "Answer:" line).
    thinks = served.chat_template is not None and "<think>" in served.chat_template
    reasoning = Reasoning.THINK if thinks else Reasoning.NONE
    entry = ModelEntry(name=name, description=f"served by {where}", reasoning=reasoning, stop=stop)
    model = ResolvedModel(served.id, None, Path("remote") / name, entry, remote=replace(target, model=served.id))
    template = "its chat template from /props" if served.chat_template else "ChatML (the server tells no chat template)"
    return Identified(
        model,
        f"{where} runs '{served.id}', which is not in the registry: using {template} and the "
        f"'{reasoning.value}' reasoning format (-m NAME picks a registry model's formats)",
    )
