"""How many KV cells to allocate: ``--ctx``, but not beyond what the model was
trained for unless ``--force-ctx`` says so, and what either choice costs.

The KV cache is allocated in full when the model loads. ``--ctx 100000`` on
a model trained for 8192 tokens reserved 2.5 GB that no sequence the model
can handle well would use; the notice says what was asked, what is used and
the memory at stake, so the user can decide with ``--force-ctx``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..core.settings import KVCacheType, RuntimeSettings

# bytes per cached element: f16 is 2; q8_0 stores 32 values in 34 bytes
_ELEMENT_BYTES = {KVCacheType.F16: 2.0, KVCacheType.Q8_0: 34 / 32}


def kv_bytes_per_cell(lib: Any, model: Any, metadata: dict[str, str], kv_cache: KVCacheType) -> int:
    """Bytes one KV cell takes over all layers (keys and values), from the
    model's shape; 0 when the model does not tell."""
    try:
        layers = int(lib.llama_model_n_layer(model))
        heads = int(lib.llama_model_n_head(model))
        heads_kv = int(lib.llama_model_n_head_kv(model))
        embd = int(lib.llama_model_n_embd(model))
    except (AttributeError, TypeError, ValueError):
        return 0
    if min(layers, heads, heads_kv, embd) <= 0:
        return 0
    arch = metadata.get("general.architecture", "")
    key_len = _int(metadata.get(f"{arch}.attention.key_length")) or embd // heads
    value_len = _int(metadata.get(f"{arch}.attention.value_length")) or embd // heads
    return int(layers * heads_kv * (key_len + value_len) * _ELEMENT_BYTES[kv_cache])


def context_cells(
    runtime: RuntimeSettings, n_ctx_train: int, bytes_per_cell: int, notify: Callable[[str], None]
) -> int:
    """The KV cells to allocate for ``runtime.n_ctx``; a notice when it is above the training context."""
    asked = runtime.n_ctx
    if n_ctx_train <= 0 or asked <= n_ctx_train:
        return asked
    cost = f"KV cache {human(asked * bytes_per_cell)} instead of {human(n_ctx_train * bytes_per_cell)}"
    above = f"--ctx {asked} is above the {n_ctx_train} tokens this model was trained for"
    if runtime.force_ctx:
        notify(f"{above}; kept (--force-ctx)" + (f": {cost}" if bytes_per_cell else ""))
        return asked
    notify(f"{above}; using {n_ctx_train} (--force-ctx keeps {asked}" + (f": {cost})" if bytes_per_cell else ")"))
    return n_ctx_train


def human(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _notice(message: str) -> None:
    sys.stderr.write(f"marco: {message}\n")
    sys.stderr.flush()
