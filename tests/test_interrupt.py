"""Ctrl-C while generating, in a real pseudo-terminal: what was generated so
far stays on screen, the exit code is 130, no traceback."""

from __future__ import annotations

import pexpect
import pytest
from child_env import spawn_marco

pytestmark = pytest.mark.model


def test_ctrl_c_mid_generation_keeps_partial_answer(tmp_path):
    child = spawn_marco(
        "ask",
        "-m",
        "tiny",
        "--mode",
        "cot",
        "--max-tokens",
        "4000",
        "--temperature",
        "1.0",
        "--seed",
        "1",
        "Write a very long story about a dragon who learns to count.",
        home=tmp_path,
        timeout=120,
        dimensions=(40, 120),
    )
    child.expect(r"\w{3,}")  # the answer (or thought) is streaming
    shown = child.before + child.after
    child.sendintr()
    child.expect(pexpect.EOF)
    shown += child.before
    child.close()
    assert child.exitstatus == 130, shown
    assert "Traceback" not in shown
    assert "interrupted" in shown
