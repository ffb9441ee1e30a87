"""The marco children the tests start: their environment, and the two usual
ways to run one (to its end with pipes, or in a pseudo-terminal)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
MARCO = [sys.executable, "-m", "marco_cli"]


def pythonpath(root: Path) -> str:
    """The repository ahead of the inherited PYTHONPATH, never instead of it: the
    inherited entries carry the no-model stand-in (tests/conftest.py) into the
    child, so a child of a test without ``@pytest.mark.model`` cannot load the
    embedded model either."""
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(root), inherited] if inherited else [str(root)])


def marco_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """The test's own environment (tests/conftest.py has already taken the
    user's MARCO_* settings and NO_COLOR out of it) with the repository on
    PYTHONPATH, MARCO_HOME=HOME when given (else the test's), and EXTRA."""
    env = {**os.environ, "PYTHONPATH": pythonpath(ROOT)}
    if home is not None:
        env["MARCO_HOME"] = str(home)
    env.update(extra)
    return env


def run_marco(
    *args: str, input: str | None = None, stdout=subprocess.PIPE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``marco ARGS`` to its end as a shell runs it: stdin closed unless INPUT
    is written to it, stdout (unless sent elsewhere) and stderr read as text."""
    return subprocess.run(
        [*MARCO, *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env or marco_env(),
        cwd=ROOT,
        timeout=600,  # a hang guard, not a speed check
    )


def spawn_marco(
    *args: str, home: Path | None = None, timeout: float, dimensions: tuple[int, int] = (30, 100), **extra: str
) -> pexpect.spawn:
    """``marco ARGS`` in a pseudo-terminal that shows colour (TERM=xterm),
    read as text; EXTRA goes into its environment."""
    return pexpect.spawn(
        MARCO[0],
        [*MARCO[1:], *args],
        env=marco_env(home, TERM="xterm", **extra),
        timeout=timeout,
        encoding="utf-8",
        dimensions=dimensions,
    )
