"""A stream that goes silent: a server going away is told from a slow one.

A real socket server on 127.0.0.1 (a thread of this test) sends one event and
then either stops listening while it keeps the connection open and silent
(what llama-server does for ~30 s after SIGTERM), or stays listening and
finishes late. The first must end the stream with a clear error long before
the read timeout; the second must be waited for."""

from __future__ import annotations

import socket
import threading

import pytest

from marco_cli.backends.remote_http import Http
from marco_cli.core.errors import BackendError

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(text: str) -> bytes:
    data = text.encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


class SilentServer:
    """Answers one POST with one event, then goes quiet until ``finish``."""

    def __init__(self, *, stop_listening: bool) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop_listening = stop_listening
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            conn.sendall(HEAD + chunk('data: {"first": 1}\n\n'))
            if self.stop_listening:
                self.listener.close()  # nobody may connect now; this connection stays open
            self.release.wait(60)  # the hang guard; the test releases it
            try:
                conn.sendall(chunk('data: {"last": 1}\n\n') + chunk("data: [DONE]\n\n") + b"0\r\n\r\n")
            except OSError:
                pass  # the client cut the connection: expected when the server was "gone"
        if not self.stop_listening:
            self.listener.close()


def client(port: int, *, timeout: float = 60.0) -> Http:
    http = Http(f"http://127.0.0.1:{port}", timeout=timeout)
    http.stall_probe_after = 0.3
    http.stall_probe_every = 0.1
    return http


def test_a_server_that_stopped_listening_ends_the_silent_stream():
    server = SilentServer(stop_listening=True)
    http = client(server.port)
    lines: list[str] = []
    try:
        with pytest.raises(BackendError) as info, http.stream("/v1/completions", {"prompt": "x"}) as response:
            lines.extend(line for line in response.iter_lines() if line)
    finally:
        server.release.set()
        server.thread.join(10)
        http.close()
    assert lines == ['data: {"first": 1}']  # what came before the silence was read
    assert "no longer accepts connections" in str(info.value)
    assert str(info.value).startswith(f"http://127.0.0.1:{server.port}: ")


def test_a_slow_server_that_still_listens_is_waited_for():
    server = SilentServer(stop_listening=False)
    http = client(server.port)
    # released well after several probes found the port open
    timer = threading.Timer(1.5, server.release.set)
    timer.start()
    try:
        with http.stream("/v1/completions", {"prompt": "x"}) as response:
            lines = [line for line in response.iter_lines() if line]
    finally:
        timer.cancel()
        server.release.set()
        server.thread.join(10)
        http.close()
    assert lines == ['data: {"first": 1}', 'data: {"last": 1}', "data: [DONE]"]


def test_listening_tells_refused_from_open():
    with socket.create_server(("127.0.0.1", 0)) as open_port:
        http = Http(f"http://127.0.0.1:{open_port.getsockname()[1]}")
        assert http.listening() is True
        http.close()
    with socket.socket() as spare:  # a port that was free a moment ago
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    http = Http(f"http://127.0.0.1:{port}")
    assert http.listening() is False
    http.close()


def test_a_cancelled_batch_does_not_wait_for_a_silent_stream():
    """Ctrl-C (or a failed sibling request) sets ``cancelled``: a stream held
    silent by a live server ends too, instead of at the server's pleasure."""
    server = SilentServer(stop_listening=False)
    http = client(server.port)
    timer = threading.Timer(0.5, http.cancelled.set)
    timer.start()
    try:
        with pytest.raises(BackendError) as info, http.stream("/v1/completions", {"prompt": "x"}) as response:
            for _ in response.iter_lines():
                pass
    finally:
        timer.cancel()
        server.release.set()
        server.thread.join(10)
        http.close()
    assert "no longer accepts" not in str(info.value)  # cut for the caller, not taken for a dead server
