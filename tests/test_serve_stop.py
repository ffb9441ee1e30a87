"""Requests that must end early, on real ``marco serve`` processes with the
embedded SmolLM2: the client disconnects (streaming or not, chain of thought
or search), the per-request time limit passes, the server gets Ctrl-C with
requests in flight. The server says on stderr what it stopped and after how
much work; the tests read that, and that the next request is answered.

No timing thresholds: every request here asks for far more work than it is
allowed to finish, and the tests only wait (with generous hang guards)."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time

import httpx
import pytest
from serve_process import Served, start

from marco_cli.models.registry import load_registry, resolve
from marco_cli.reasoner import Reasoner
from marco_cli.server.service import ChatService
from marco_cli.server.stopping import Halt

pytestmark = pytest.mark.model

LONG = [{"role": "user", "content": "Count from 1 to 500, writing each number on its own line."}]
STOPPED = re.compile(
    r"stopped a (\S+) request \((client gone|time limit|shutting down)\): (\d+) tokens generated"
    r"(?:, (\d+) of (\d+) simulations| of at most (\d+))"
)

# a chain of thought and a search, each asking for far more than it may finish
PLAIN_AND_SEARCH = pytest.mark.parametrize(
    "model, extra",
    [
        ("smollm2-135m", {"max_tokens": 4000}),
        ("smollm2-135m+mcts", {"max_tokens": 4000, "marco": {"simulations": 100000}}),
    ],
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = start(
        tmp_path_factory.mktemp("serve_stop"),
        "-m",
        "tiny",
        "--ctx",
        "4096",
        "--limit",
        "simulations=100000",
        "--children",
        "2",
    )
    yield served
    served.stop()


def raw_request(served: Served, body: dict) -> socket.socket:
    """Send a chat request on a bare socket and return it unread."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=60)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def stops(served: Served) -> list[tuple[str, ...]]:
    return STOPPED.findall(served.stderr())


def answer_now(served: Served) -> None:
    """The model is free again: a small request is answered."""
    reply = httpx.post(
        f"{served.url}/chat/completions",
        timeout=120,
        json={"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
    )
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] <= 4


@PLAIN_AND_SEARCH
def test_a_plain_request_stops_when_its_client_disconnects(server, model, extra):
    before = len(stops(server))
    sock = raw_request(server, {"model": model, "messages": LONG, **extra})
    server.wait_until(running=1)
    sock.close()
    server.wait_for_log("(client gone)", count=before + 1)
    server.wait_until(running=0)
    name, why, tokens, sims, sims_asked, cap = stops(server)[-1]
    assert (name, why) == (model, "client gone")
    if sims:
        assert int(sims) < int(sims_asked) == 100000
    else:
        assert int(tokens) < int(cap) == 4000
    answer_now(server)


@PLAIN_AND_SEARCH
def test_a_streamed_request_stops_when_its_client_disconnects(server, model, extra):
    before = len(stops(server))
    body = {"model": model, "messages": LONG, "stream": True, **extra}
    with httpx.stream("POST", f"{server.url}/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):  # the first event: the request is on
                server.wait_until(running=1)
                break  # leaving the loop half-read closes the connection
    server.wait_for_log("(client gone)", count=before + 1)
    server.wait_until(running=0)
    name, why, tokens, sims, _, cap = stops(server)[-1]
    assert (name, why) == (model, "client gone")
    assert int(sims) < 100000 if sims else int(tokens) < int(cap)
    answer_now(server)


def test_a_client_gone_before_its_turn_is_never_run(server):
    before = len(stops(server))
    first = raw_request(server, {"model": "tiny", "messages": LONG, "max_tokens": 4000})
    server.wait_until(running=1)
    second = raw_request(server, {"model": "tiny+mcts", "messages": LONG, "marco": {"simulations": 100000}})
    server.wait_until(waiting=1)
    second.close()
    server.wait_until(waiting=0)  # cancelled in the queue
    first.close()
    server.wait_for_log("(client gone)", count=before + 1)
    server.wait_until(running=0)
    assert [s[0] for s in stops(server)[before:]] == ["smollm2-135m"]  # only the first ever ran
    answer_now(server)


def test_ctrl_c_with_requests_in_flight_is_quick_quiet_and_answers_them(tmp_path):
    served = start(tmp_path, "-m", "tiny", "--limit", "simulations=100000")
    results: dict[str, object] = {}

    def plain() -> None:
        results["plain"] = httpx.post(
            f"{served.url}/chat/completions",
            timeout=120,
            json={"model": "tiny+mcts", "messages": LONG, "marco": {"simulations": 100000}},
        )

    def streamed() -> None:
        body = {"model": "tiny", "messages": LONG, "max_tokens": 4000, "stream": True}
        with httpx.stream("POST", f"{served.url}/chat/completions", json=body, timeout=120) as response:
            results["streamed"] = [line for line in response.iter_lines() if line.startswith("data: ")]

    threads = [threading.Thread(target=plain)]
    try:
        threads[0].start()
        served.wait_until(running=1)
        threads.append(threading.Thread(target=streamed))
        threads[1].start()
        served.wait_until(waiting=1)
        served.proc.send_signal(signal.SIGINT)
        assert served.proc.wait(120) == 130
    finally:
        for t in threads:
            t.join(120)
        served.stop()
    plain_reply = results["plain"]
    assert plain_reply.status_code == 503 and plain_reply.json()["error"]["code"] == "shutting_down"
    events = results["streamed"]
    assert events[-1] == "data: [DONE]" and json.loads(events[-2][6:])["error"]["code"] == "shutting_down"
    err = served.stderr()
    assert "Traceback" not in err and "CancelledError" not in err and "Exception" not in err
    assert "(shutting down)" in err and err.rstrip().endswith("marco: interrupted")
    assert len(err.strip().splitlines()) <= 4, err  # serving, the stopped request, interrupted


def test_sigterm_answers_the_running_request_then_ends_by_the_signal(tmp_path):
    """A service manager's stop: the request in flight gets its JSON 503, the
    model is closed, and the process ends by SIGTERM as managers expect."""
    served = start(tmp_path, "-m", "tiny")
    results: dict[str, httpx.Response] = {}

    def plain() -> None:
        results["plain"] = httpx.post(
            f"{served.url}/chat/completions", timeout=120, json={"model": "tiny", "messages": LONG, "max_tokens": 4000}
        )

    thread = threading.Thread(target=plain)
    try:
        thread.start()
        served.wait_until(running=1)
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(120) == -signal.SIGTERM
    finally:
        thread.join(120)
        served.stop()
    assert results["plain"].status_code == 503 and results["plain"].json()["error"]["code"] == "shutting_down"
    err = served.stderr()
    assert "Traceback" not in err and "(shutting down)" in err and "interrupted" not in err


def test_the_time_limit_answers_with_the_work_so_far(tmp_path):
    served = start(tmp_path, "-m", "tiny", "--limit", "seconds=1", "--limit", "simulations=100000")
    try:
        for model, extra in (("tiny", {}), ("tiny+mcts", {"marco": {"simulations": 100000}})):
            reply = httpx.post(
                f"{served.url}/chat/completions",
                timeout=120,
                json={"model": model, "messages": LONG, "max_tokens": 4000, **extra},
            )
            data = reply.json()
            assert reply.status_code == 200 and data["choices"][0]["finish_reason"] == "length"
            assert data["usage"]["marco"]["stopped_by"] == "time_limit"
        found = STOPPED.findall(served.stderr())
        assert [(f[0], f[1]) for f in found] == [("smollm2-135m", "time limit"), ("smollm2-135m+mcts", "time limit")]
        assert int(found[0][2]) < 4000 and int(found[1][3]) < 100000
    finally:
        served.stop()


def test_a_stopped_request_leaves_the_llama_context_as_it_was(monkeypatch):
    """In-process on the real model: stops mid-generation and mid-search free
    every KV sequence they took, and a greedy answer afterwards is unchanged."""
    monkeypatch.setenv("MARCO_THREADS", "1")
    from marco_cli.core.settings import RuntimeSettings, SearchSettings

    model = resolve(load_registry(None), "tiny")
    service = ChatService(
        Reasoner(model, RuntimeSettings(n_ctx=4096)),
        search=SearchSettings(simulations=100000, children=2, max_tokens=4000),
    )
    small = {"model": "tiny", "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 24}
    try:
        first, _ = service.submit(service.call(small))
        before = first.result(120).answer.text
        kv = service.backend.inner.engine.kv

        def orphans() -> int:  # KV sequences that no model state owns: lost for good
            return kv.live - sum(1 for node in kv.nodes.values() if node.seq is not None)

        assert orphans() == 0

        def generated_tokens() -> int:  # read afresh: ``stats`` may be a snapshot
            return service.backend.inner.stats.generated_tokens

        for body in (
            {"model": "tiny", "messages": LONG, "max_tokens": 4000},
            # no early stop: the search must still be running when it is stopped
            {"model": "tiny+mcts", "messages": LONG, "max_tokens": 4000, "marco": {"early_stop": 0}},
        ):
            generated = generated_tokens()
            future, ticket = service.submit(service.call(body))
            while generated_tokens() < generated + 40 and not future.done():
                time.sleep(0.01)
            ticket.stop(Halt.GONE)
            with pytest.raises(Exception, match="client closed"):
                future.result(120)
            assert orphans() == 0
        again, _ = service.submit(service.call(small))
        assert again.result(120).answer.text == before
    finally:
        service.close()
