"""How many leaves one MCTS iteration expands when ``--leaves auto`` (the default).

Several leaves per iteration (virtual loss, ``uct.py``) put all their
children, and then all their rollouts, into the same llama.cpp batches. That
pays only where a decode of many rows costs little more than a decode of
one: where reading the weights, not arithmetic, bounds a decode. Measured
side by side (BENCHMARKS.md, "Speed"; 2-core CPU, one thread):

- SmolLM2-135M Q4_1 (86 MB): 12 rows decoded together gave ~1.4-1.7x the
  tokens/s of one row, and 3 rows (one leaf's children) already ~1.4x: more
  leaves buy little and make the tree less sequential.
- Qwen2.5-0.5B Q4_K_M (491 MB): 12 rows gave ~1.9-5.9x, 24 rows ~2.2-6.5x.
- A GPU decodes 16 rows in about the time of one.

Hence: 4 leaves (8 rows with the default 2 children) for weights of 256 MiB
or more, or any offload to a GPU; 1 below that on the CPU; 1 on a remote
server (whose batching marco cannot see). The rule reads only the weights'
size (llama.cpp's, the one the thread rule reads too) and the offload
setting, never a clock, so one seed gives one tree.
"""

from __future__ import annotations

from ..backends.base import ModelInfo

MEMORY_BOUND_BYTES = 256 << 20
"""Weights from which a CPU decode is bound by memory reads (see above)."""

WIDE_LEAVES = 4
"""Leaves per iteration where batches pay: 8 rows with 2 children."""


def auto_leaves(info: ModelInfo) -> int:
    """Leaves per iteration for this model where the user left it to marco."""
    if not info.weights_bytes:  # a remote server: its batching is its own
        return 1
    if info.gpu_layers or info.weights_bytes >= MEMORY_BOUND_BYTES:
        return WIDE_LEAVES
    return 1
