"""``--leaves auto``: the rule that picks leaves per iteration, and that the
search applies it (and nothing else) when the setting is left at auto."""

from __future__ import annotations

from dataclasses import replace

import pytest
from scripted_backend import ScriptedBackend

from marco_cli.backends.base import ModelInfo
from marco_cli.core.settings import SearchSettings
from marco_cli.search import run_search
from marco_cli.search.batching import MEMORY_BOUND_BYTES, WIDE_LEAVES, auto_leaves


def info(weights: int, gpu_layers: int = 0) -> ModelInfo:
    return ModelInfo(
        name="m",
        path="m.gguf",
        n_ctx=512,
        n_vocab=10,
        eos_tokens=(),
        chat_template=None,
        gpu_layers=gpu_layers,
        weights_bytes=weights,
    )


def test_rule_reads_the_weights_size_and_offload():
    assert auto_leaves(info(MEMORY_BOUND_BYTES - 1)) == 1
    assert auto_leaves(info(MEMORY_BOUND_BYTES)) == WIDE_LEAVES
    assert auto_leaves(info(90 << 20, gpu_layers=-1)) == WIDE_LEAVES
    assert auto_leaves(info(0)) == 1  # a server: its batching is its own


@pytest.mark.model
def test_the_loaded_models_weights_are_what_the_rule_reads(smol_gguf):
    """The embedded model as llama.cpp loads it: ~86 MB of weights, one leaf
    (compute-bound on a CPU), and a remote server's info has no weights."""
    from marco_cli.backends.llama import LlamaBackend
    from marco_cli.core.settings import RuntimeSettings

    backend = LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=2048, n_threads=1), name="tiny")
    try:
        assert 50 << 20 < backend.info.weights_bytes < MEMORY_BOUND_BYTES
        assert auto_leaves(backend.info) == 1
    finally:
        backend.close()


def test_auto_is_resolved_once_and_the_tree_stays_seeded():
    settings = SearchSettings(simulations=8, children=3, max_tokens=120, seed=4)
    assert settings.leaves_per_iteration == 0  # auto is the default

    def run(weights: int):
        backend = ScriptedBackend()
        backend.info = replace(backend.info, weights_bytes=weights)
        return run_search(backend, [1, 2, 3], settings)

    narrow_a, narrow_b = run(0), run(0)
    wide_a, wide_b = run(MEMORY_BOUND_BYTES), run(MEMORY_BOUND_BYTES)
    assert narrow_a.stats.iterations == 8  # one leaf per iteration
    assert wide_a.stats.iterations < 8  # several leaves per iteration
    for a, b in ((narrow_a, narrow_b), (wide_a, wide_b)):
        assert (a.answer_text, a.rollouts, a.stats.nodes) == (b.answer_text, b.rollouts, b.stats.nodes)
