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


def info(path: str, gpu_layers: int = 0) -> ModelInfo:
    return ModelInfo(
        name="m", path=path, n_ctx=512, n_vocab=10, eos_tokens=(), chat_template=None, gpu_layers=gpu_layers
    )


def sized(tmp_path, size: int) -> str:
    path = tmp_path / f"w{size}.gguf"
    with path.open("wb") as fh:  # sparse: no real disk used
        fh.truncate(size)
    return str(path)


@pytest.mark.model
def test_rule_reads_the_weights_size_and_offload(tmp_path, smol_gguf):
    assert auto_leaves(info(str(smol_gguf))) == 1  # the embedded model: compute-bound on a CPU
    assert auto_leaves(info(sized(tmp_path, MEMORY_BOUND_BYTES - 1))) == 1
    assert auto_leaves(info(sized(tmp_path, MEMORY_BOUND_BYTES))) == WIDE_LEAVES
    assert auto_leaves(info(str(smol_gguf), gpu_layers=-1)) == WIDE_LEAVES
    assert auto_leaves(info("http://127.0.0.1:8080/v1")) == 1  # a server: its batching is its own
    assert auto_leaves(info(str(tmp_path / "gone.gguf"))) == 1


def test_auto_is_resolved_once_and_the_tree_stays_seeded(tmp_path):
    settings = SearchSettings(simulations=8, children=3, max_tokens=120, seed=4)
    assert settings.leaves_per_iteration == 0  # auto is the default

    def run(path: str):
        backend = ScriptedBackend()
        backend.info = replace(backend.info, path=path)
        return run_search(backend, [1, 2, 3], settings)

    wide = sized(tmp_path, MEMORY_BOUND_BYTES)
    narrow_a, narrow_b = run(str(tmp_path / "none")), run(str(tmp_path / "none"))
    wide_a, wide_b = run(wide), run(wide)
    assert narrow_a.stats.iterations == 8  # one leaf per iteration
    assert wide_a.stats.iterations < 8  # several leaves per iteration
    for a, b in ((narrow_a, narrow_b), (wide_a, wide_b)):
        assert (a.answer_text, a.rollouts, a.stats.nodes) == (b.answer_text, b.rollouts, b.stats.nodes)
