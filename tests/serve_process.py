"""Start and stop real ``marco serve`` processes on 127.0.0.1 for the tests.

The server picks a free port (``--port 0``) and says it on stderr; the tests
read the URL from there. Its stderr goes to a file the tests read too (the
operator's notes: fallback, stopped requests)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import child_env
import httpx
from child_env import MARCO, ROOT

START_SECONDS = 180  # a hang guard for a loaded machine, not a speed check
READY = re.compile(r"on (http://127\.0\.0\.1:(\d+)/v1)")


def marco_env(home: Path, **extra: str) -> dict[str, str]:
    """A server's environment: plain stderr, one engine thread, no hub."""
    return child_env.marco_env(home, **{"NO_COLOR": "1", "MARCO_THREADS": "1", "HF_HUB_OFFLINE": "1", **extra})


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT/v1
    port: int
    proc: subprocess.Popen
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, needle: str, *, count: int = 1, seconds: float = 120) -> str:
        deadline = time.monotonic() + seconds
        while self.stderr().count(needle) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never showed on the server's stderr:\n{self.stderr()[-3000:]}")
            time.sleep(0.1)
        return self.stderr()

    def health(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=30).json()

    def wait_until(self, *, running: int | None = None, waiting: int | None = None, seconds: float = 120) -> None:
        """Until /health shows that many requests running (0 or 1) and waiting."""
        deadline = time.monotonic() + seconds
        while True:
            load = self.health()
            if running in (None, load["running"]) and waiting in (None, load["waiting"]):
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"/health never showed running={running} waiting={waiting}:\n{self.stderr()[-3000:]}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start(home: Path, *args: str, env: dict[str, str] | None = None, argv: list[str] | None = None) -> Served:
    """``marco serve --port 0 ARGS`` (or ``argv`` as given) with stderr in HOME/stderr-N.log."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"stderr-{len(list(home.glob('stderr-*.log')))}.log"
    command = argv or [*MARCO, "serve", "--port", "0", *args]
    with log.open("wb") as err:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env or marco_env(home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + START_SECONDS
    while not (match := READY.search(log.read_text(errors="replace"))):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            raise AssertionError(f"marco serve did not start: {log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return Served(match.group(1), int(match.group(2)), proc, log)
