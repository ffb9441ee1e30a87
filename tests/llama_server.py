"""llama.cpp's own ``llama-server`` for the tests: the binary, and real server
processes on 127.0.0.1 (free ports) that the tests start and stop.

Which binary: ``MARCO_LLAMA_SERVER`` (a path) if set, else the one
``.ci/build-llama-server`` cached for the installed llama-cpp-python version
(the same llama.cpp marco runs in-process, so values can be compared token for
token). CI (``MARCO_CI=1``, set by ``.ci/run``) builds it when it is missing,
in the background from the start of the session (``start_background_build``),
so the build overlaps the rest of the suite; these tests run last and wait
for it. A local run without the binary skips them and says how to get it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / ".ci" / "build-llama-server"
START_SECONDS = 300  # a hang guard for the model load, not a speed check
N_CTX = 4096


def in_ci() -> bool:
    return os.environ.get("MARCO_CI", "").strip() not in ("", "0")


def llama_cpp_version() -> str:
    return version("llama-cpp-python")


def cache_root() -> Path:
    return Path(os.environ.get("MARCO_CI_CACHE") or Path.home() / ".cache" / "marco-ci")


def cached_binary() -> Path:
    return cache_root() / f"llama-server-{llama_cpp_version()}" / "llama-server"


def build_log() -> Path:
    return cache_root() / f"llama-server-{llama_cpp_version()}.log"


def start_background_build() -> subprocess.Popen | None:
    """CI only: start building the binary now unless it is there (called once
    per session, before the tests run)."""
    if not in_ci() or os.environ.get("MARCO_LLAMA_SERVER") or cached_binary().exists():
        return None
    build_log().parent.mkdir(parents=True, exist_ok=True)
    with build_log().open("ab") as log:
        return subprocess.Popen(
            [str(BUILD_SCRIPT), llama_cpp_version()],
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def find_binary() -> Path:
    """The binary, building it in CI (waiting for the background build, which
    holds the build lock); a skip with instructions elsewhere."""
    given = os.environ.get("MARCO_LLAMA_SERVER")
    if given:
        path = Path(given).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"MARCO_LLAMA_SERVER={given} is not an executable file")
        return path
    if cached_binary().exists():
        return cached_binary()
    if not in_ci():
        pytest.skip(
            f"no llama-server for llama-cpp-python {llama_cpp_version()}: build it once with "
            f"`.ci/build-llama-server {llama_cpp_version()}` (CI does), or set MARCO_LLAMA_SERVER"
        )
    if shutil.which("cmake") is None:
        pytest.fail("CI needs cmake to build llama-server")
    with build_log().open("ab") as log:
        done = subprocess.run(
            [str(BUILD_SCRIPT), llama_cpp_version()],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    if done.returncode != 0 or not cached_binary().exists():
        tail = build_log().read_text(errors="replace")[-3000:]
        pytest.fail(f"building llama-server failed ({done.returncode}); the end of {build_log()}:\n{tail}")
    return cached_binary()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """One ``llama-server`` process with the embedded model.

    Its settings mirror marco's local engine (flash attention, one unified KV
    cache, 512-token batches, one thread) so that values can match a local
    run exactly; two slots so that marco's concurrent requests run together."""

    def __init__(self, binary: Path, model: Path, log: Path, *, slots: int = 2, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [
            str(binary),
            "-m",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-c",
            str(N_CTX),
            "-np",
            str(slots),
            "--kv-unified",
            "-fa",
            "on",
            "-b",
            "512",
            "-ub",
            "512",
            "-t",
            "1",
            "-tb",
            "1",
            "--no-webui",
            "--metrics",
            *extra,
        ]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_serving(self.proc, f"{self.url}/health", log, START_SECONDS)
        except BaseException:
            self.stop()
            raise

    def metric(self, name: str) -> float:
        """A counter from ``/metrics`` (Prometheus text), 0 when absent."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(f"llamacpp:{name} "):
                return float(line.split()[1])
        return 0.0

    def kill(self) -> None:
        """``kill -9``: no goodbye, connections just drop."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        stop(self.proc)


def wait_serving(proc: subprocess.Popen, url: str, log: Path, seconds: float) -> None:
    """Until URL answers 200 (SECONDS: a hang guard for the model load, not a
    speed check); a failure with the end of LOG if the server exits first."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"the server for {url} exited with {proc.returncode}: {log.read_text(errors='replace')[-3000:]}"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {seconds} s: {log}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
