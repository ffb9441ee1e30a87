"""marco serve's app in-process, on the scripted backend (no model, no port):
the OpenAI shapes, streaming, presets, the request queue, stopping requests,
the access checks and every error path. The same behaviours are tested on
real processes in test_serve_cli.py, test_serve_security.py and
test_serve_stop.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from scripted_backend import OUTPUT, THOUGHT, THOUGHT_END, ScriptedBackend

from marco_cli.core.errors import BackendError
from marco_cli.core.settings import SearchSettings
from marco_cli.models.registry import parse_registry, resolve
from marco_cli.reasoner import Reasoner
from marco_cli.server.access import AccessPolicy
from marco_cli.server.app import create_app
from marco_cli.server.limits import ServerLimits
from marco_cli.server.schema import ChatMessage, RequestError, conversation
from marco_cli.server.service import ChatService, StandIn

REGISTRY = (
    'default = "big"\nfallback = "scripted"\n'
    '[models.scripted]\npath = "/nowhere/scripted.gguf"\naliases = ["s"]\nthought_format = true\n'
    '[models.big]\npath = "/nowhere/big.gguf"\naliases = ["b"]\n'
)
QUESTION = [{"role": "user", "content": "What is 2+3?"}]
FAST_SEARCH = SearchSettings(simulations=3, children=2, max_tokens=80)
IDS = [
    "scripted",
    "scripted+mcts",
    "scripted+mcts-quick",
    "scripted+mcts-mini64",
    "scripted+mcts-mini32",
    "scripted+vote",
]


def make_client(backend=None, policy=None, **service_options) -> tuple[TestClient, ChatService]:
    registry = parse_registry(REGISTRY, Path("m.toml"))
    reasoner = Reasoner(resolve(registry, "scripted"), backend=backend or ScriptedBackend())
    service_options.setdefault("stand_in", StandIn(resolve(registry, "big")))
    service = ChatService(reasoner, search=FAST_SEARCH, max_tokens=80, **service_options)
    client = TestClient(create_app(service, policy), base_url="http://localhost:8000")
    client.service = service
    return client, service


@pytest.fixture
def client():
    client, service = make_client()
    yield client
    service.close()


def events(response) -> list:
    assert response.headers["content-type"].startswith("text/event-stream")
    out = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_models_lists_cot_mcts_and_the_presets(client):
    data = client.get("/v1/models").json()
    assert [m["id"] for m in data["data"]] == IDS
    assert client.get("/v1/models/S+MCTS").json()["id"] == "scripted+mcts"  # aliases, any case
    assert client.get("/v1/models/scripted+cot").json()["id"] == "scripted"
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/v1/models/scripted+mcts-slow").status_code == 404


@pytest.mark.parametrize(
    "model, action, simulations, children",
    [
        ("scripted+mcts", "step", 3, 2),  # the server's own search settings
        ("scripted+mcts-quick", "step", 3, 2),  # never more than the server's
        ("scripted+mcts-mini32", "mini-32", 3, 2),
    ],
)
def test_presets_pick_the_search_and_the_body_overrides_them(client, model, action, simulations, children):
    data = client.post("/v1/chat/completions", json={"model": model, "messages": QUESTION}).json()
    assert data["model"] == model and data["usage"]["marco"]["search"]["simulations"] == simulations
    assert service_call(client, model).search.action.value == action
    assert service_call(client, model).search.children == children
    body = {"model": model, "messages": QUESTION, "marco": {"simulations": 1}}
    assert client.post("/v1/chat/completions", json=body).json()["usage"]["marco"]["search"]["simulations"] == 1


def service_call(client, model):
    return client.service.call({"model": model, "messages": QUESTION})


def test_quick_preset_is_smaller_than_the_server_search():
    _client, service = make_client()
    try:
        service.search = SearchSettings(simulations=16, children=3, max_tokens=80)
        call = service.call({"model": "scripted+mcts-quick", "messages": QUESTION})
        assert (call.search.simulations, call.search.children) == (4, 2)
        assert service.call({"model": "scripted+mcts", "messages": QUESTION}).search.simulations == 16
    finally:
        service.close()


def test_the_missing_default_is_answered_by_the_fallback_and_says_so(client):
    response = client.post(
        "/v1/chat/completions", json={"model": "big+mcts", "messages": QUESTION, "marco": {"simulations": 1}}
    )
    assert response.status_code == 200
    assert response.json()["model"] == "scripted+mcts" and response.headers["x-marco-model"] == "scripted+mcts"
    assert "big is not downloaded; scripted answered" in response.headers["x-marco-fallback"]
    own = client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION})
    assert own.json()["model"] == "scripted" and "x-marco-fallback" not in own.headers
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == IDS  # not listed
    streamed = client.post("/v1/chat/completions", json={"model": "b", "messages": QUESTION, "stream": True})
    assert "x-marco-fallback" in streamed.headers and events(streamed)[1]["model"] == "scripted"


def test_chat_completion_has_thought_answer_and_usage(client):
    data = client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION}).json()
    message = data["choices"][0]["message"]
    assert data["object"] == "chat.completion" and data["model"] == "scripted"
    assert message["role"] == "assistant" and message["content"] and message["reasoning_content"]
    assert "<" not in message["content"] + message["reasoning_content"]
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["marco"]["mode"] == "cot" and data["choices"][0]["finish_reason"] in ("stop", "length")


def test_search_usage_counts_the_answer_as_completion_and_the_rest_as_reasoning(client):
    body = {"model": "scripted+mcts", "messages": QUESTION, "marco": {"simulations": 3, "children": 2}}
    usage = client.post("/v1/chat/completions", json=body).json()["usage"]
    searched = usage["marco"]["search"]["tokens_generated"]
    assert 0 < usage["completion_tokens"] < searched
    assert usage["completion_tokens_details"]["reasoning_tokens"] == searched - usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + searched


def test_streamed_cot_splits_thought_and_answer_like_the_plain_answer(client):
    body = {"model": "scripted", "messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}}
    plain = client.post("/v1/chat/completions", json=dict(body, stream=False)).json()["choices"][0]["message"]
    chunks = events(client.post("/v1/chat/completions", json=body))
    assert chunks[-1] == "[DONE]" and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-2]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == plain["reasoning_content"]
    assert "".join(d.get("content", "") for d in deltas) == plain["content"]
    assert chunks[-3]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["marco"]["mode"] == "cot"


class SkipsThought(ScriptedBackend):
    """Writes its thought without <Thought>/</Thought>: thought text, then <Output>."""

    def _policy(self, generated, rng):
        token = super()._policy((THOUGHT, *generated), rng)
        return OUTPUT if token == THOUGHT_END else token


def test_a_model_that_skips_the_thought_tag_streams_no_tag_into_the_answer():
    client, service = make_client(SkipsThought())
    try:
        body = {"model": "scripted", "messages": QUESTION}
        plain = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
        assert plain["reasoning_content"] and plain["content"] and "<" not in plain["content"]
        chunks = events(client.post("/v1/chat/completions", json=dict(body, stream=True)))
        deltas = [c["choices"][0]["delta"] for c in chunks[1:-1] if c["choices"]]
        contents = [d["content"] for d in deltas[1:] if "content" in d]
        assert contents and not any("<" in c or ">" in c for c in contents)
        assert "".join(contents) == plain["content"]
        assert "".join(d.get("reasoning_content", "") for d in deltas) == plain["reasoning_content"]
    finally:
        service.close()


def test_mcts_takes_search_options_and_reports_the_search(client):
    body = {"model": "scripted+mcts", "messages": QUESTION, "marco": {"simulations": 2, "children": 2}}
    data = client.post("/v1/chat/completions", json=body).json()
    search = data["usage"]["marco"]["search"]
    assert data["usage"]["marco"]["mode"] == "mcts" and search["simulations"] == 2
    assert 0.0 <= search["value"] <= 1.0 and search["path"]
    streamed = events(client.post("/v1/chat/completions", json=dict(body, stream=True)))
    deltas = [c["choices"][0]["delta"] for c in streamed[1:-1] if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == data["choices"][0]["message"]["content"]
    assert streamed[-1] == "[DONE]"


def test_vote_answers_with_the_chosen_chain_and_counts_the_others_as_reasoning(client):
    body = {"model": "scripted+vote", "messages": QUESTION, "marco": {"samples": 4}}
    data = client.post("/v1/chat/completions", json=body).json()
    usage = data["usage"]
    vote = usage["marco"]["vote"]
    assert data["model"] == "scripted+vote" and usage["marco"]["mode"] == "vote"
    assert vote["samples"] == 4 and len(vote["keys"]) == 4 and 0 <= vote["chosen"] < 4
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0  # the 3 chains not returned
    message = data["choices"][0]["message"]
    assert message["content"] and data["choices"][0]["finish_reason"] in ("stop", "length")
    again = client.post("/v1/chat/completions", json=body).json()
    assert again["choices"][0]["message"] == message, "same seed, same vote"
    streamed = events(client.post("/v1/chat/completions", json={**body, "stream": True}))
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in streamed[:-1] if e["choices"])
    assert text == message["content"]  # the chosen chain comes whole at the end, split like the plain reply
    bad = client.post("/v1/chat/completions", json={**body, "marco": {"samples": 0}})
    assert bad.status_code == 400 and "samples" in bad.json()["error"]["message"]


def test_messages_become_system_history_and_question():
    msgs = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="developer", content="No jokes."),
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content="hello"),
        ChatMessage(role="user", content=[{"type": "text", "text": "2+"}, {"type": "text", "text": "2?"}]),
    ]
    system, history, question = conversation(msgs)
    assert system == "Be brief.\n\nNo jokes." and question == "2+2?"
    assert [(m.role, m.content) for m in history] == [("user", "hi"), ("assistant", "hello")]
    with pytest.raises(RequestError, match="last message must be the user's"):
        conversation(msgs[:4])
    with pytest.raises(RequestError, match="only text content"):
        conversation([ChatMessage(role="user", content=[{"type": "image_url", "image_url": {"url": "x"}}])])


@pytest.mark.parametrize(
    "body, status, code, words",
    [
        (b"{not json", 400, "invalid_json", "not valid JSON"),
        (b"\xff\xfe", 400, "invalid_json", "not valid JSON"),
        (b"[1, 2]", 400, "invalid_json", "must be a JSON object"),
        (
            b'{"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}',
            404,
            "model_not_found",
            "scripted+mcts",
        ),
        (b'{"model": "scripted"}', 422, "invalid_value", "messages"),
        (b'{"model": "scripted", "messages": []}', 422, "invalid_value", "at least 1"),
        (
            b'{"model": "scripted", "messages": [{"role": "tool", "content": "x"}]}',
            422,
            "invalid_value",
            "messages.0.role",
        ),
        (
            b'{"model": "scripted+mcts", "messages": [{"role": "user", "content": "hi"}], "marco": {"simulatoins": 2}}',
            422,
            "invalid_value",
            "marco.simulatoins",
        ),
        (
            b'{"model": "scripted+mcts", "messages": [{"role": "user", "content": "hi"}], "marco": {"simulations": 0}}',
            400,
            "invalid_value",
            "simulations must be > 0",
        ),
        (
            b'{"model": "scripted", "messages": [{"role": "user", "content": "hi"}], "temperature": 9}',
            400,
            "invalid_value",
            "temperature",
        ),
        (b'{"model": "scripted", "messages": [{"role": "user", "content": "hi"}], "n": 2}', 400, None, "n must be 1"),
        (b'{"model": "scripted", "messages": [{"role": "user", "content": "   "}]}', 400, None, "question is empty"),
    ],
)
def test_bad_requests_get_openai_style_errors_and_the_server_goes_on(client, body, status, code, words):
    response = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert words in error["message"] and error["code"] == code and error["type"]
    assert client.get("/v1/models").status_code == 200


def test_unknown_routes_and_methods_are_json_errors(client):
    assert client.get("/v2/whatever").json()["error"]["message"] == "no such endpoint"
    response = client.get("/v1/chat/completions")
    assert response.status_code == 405 and "error" in response.json()


class FailingBackend(ScriptedBackend):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def extend(self, requests, on_token=None):
        raise self.error


@pytest.mark.parametrize(
    "error, words",
    [
        (BackendError("the KV cache is full"), "the KV cache is full"),
        (RuntimeError("boom"), "internal error: RuntimeError: boom"),
    ],
)
def test_model_failures_are_500_json_plain_and_streamed(error, words):
    client, service = make_client(FailingBackend(error))
    try:
        response = client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION})
        assert response.status_code == 500 and words in response.json()["error"]["message"]
        streamed = events(
            client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION, "stream": True})
        )
        assert words in streamed[-2]["error"]["message"] and streamed[-1] == "[DONE]"
        assert client.get("/v1/models").status_code == 200
    finally:
        service.close()


class GatedBackend(ScriptedBackend):
    """Holds every extend until ``gate`` opens; records how many ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.started = threading.Event()
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def extend(self, requests, on_token=None):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.started.set()
        try:
            self.gate.wait(10)
            return super().extend(requests, on_token)
        finally:
            with self._lock:
                self.running -= 1


def test_requests_queue_one_at_a_time_and_overflow_gets_503():
    backend = GatedBackend()
    client, service = make_client(backend, max_queue=1)
    results: list[int] = []

    def ask() -> None:
        results.append(
            client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION}).status_code
        )

    threads = [threading.Thread(target=ask) for _ in range(2)]
    try:
        threads[0].start()
        assert backend.started.wait(10)
        threads[1].start()
        while service._waiting < 2:  # the second is queued behind the first
            threading.Event().wait(0.01)
        busy = client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION})
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "busy"
        assert busy.headers["retry-after"] == "1"
    finally:
        backend.gate.set()
        for t in threads:
            t.join(30)
        service.close()
    assert results == [200, 200] and backend.most == 1


# -- hostile and oversized requests ------------------------------------------------

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "body, words",
    [
        (
            b'{"model": "scripted", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
            "NaN is not a JSON number",
        ),
        (
            b'{"model": "scripted+mcts", "messages": [{"role": "user", "content": "hi"}], "marco": {"exploration": -Infinity}}',
            "Infinity",
        ),
        (b'{"model": "scripted", "messages": [{"role": "user", "content": "hi"}], "top_p": 1e999}', "too large"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
        (b'{"seed": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_hostile_json_is_a_400_not_a_500(client, body, words):
    response = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]["message"] and response.json()["error"]["code"] == "invalid_json"


def test_max_tokens_zero_is_refused_not_read_as_the_default(client):
    for field in ("max_tokens", "max_completion_tokens"):
        response = client.post("/v1/chat/completions", json={"model": "scripted", "messages": HI, field: 0})
        assert response.status_code == 400 and "max-tokens must be > 0, got 0" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"max_tokens": 100_000}, "max_tokens"),
        ({"messages": HI * 300}, "messages"),
        ({"marco": {"simulations": 100_000}}, "marco.simulations"),
        ({"marco": {"children": 50}}, "marco.children"),
        ({"marco": {"max_depth": 1000}}, "marco.max_depth"),
        ({"marco": {"step_max_tokens": 10**6}}, "marco.step_max_tokens"),
        ({"marco": {"budget": 1e6}}, "marco.budget"),
        ({"marco": {"delimiter": "x" * 1000}}, "marco.delimiter"),
        ({"seed": 2**64}, "seed"),
    ],
)
def test_every_request_controlled_size_has_a_limit(client, extra, param):
    body = {"model": "scripted+mcts", "messages": HI, **extra}
    response = client.post("/v1/chat/completions", json=body)
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] in ("over_limit", "invalid_value") and error["param"] == param
    assert param in error["message"]


def test_limits_are_raisable_and_never_below_the_server_own_settings():
    client, service = make_client(limits=ServerLimits.parse(["simulations=500", "body-bytes=300"]))
    try:
        assert service.limits.simulations == 500 and service.limits.max_tokens == 8192
        assert service.limits.body_bytes == 300
        big = client.post(
            "/v1/chat/completions", json={"model": "scripted", "messages": [{"role": "user", "content": "x" * 400}]}
        )
        assert big.status_code == 413 and "body-bytes" in big.json()["error"]["message"]
    finally:
        service.close()
    low = ServerLimits.parse(["simulations=2"]).covering(simulations=FAST_SEARCH.simulations)
    assert low.simulations == 3  # the operator's --simulations 3 is allowed although the limit says 2


@pytest.mark.parametrize(
    "spec, words",
    [
        (["simulation=5"], "NAME=N with NAME one of body-bytes"),
        (["simulations"], "NAME=N"),
        (["simulations=lots"], "whole number"),
        (["seconds=nan"], "must be a number > 0"),
        (["seconds=0"], "must be a number > 0"),
    ],
)
def test_bad_limit_flags_are_one_line_errors(spec, words):
    from marco_cli.core.errors import UsageError

    with pytest.raises(UsageError, match=words):
        ServerLimits.parse(spec)


# -- who may call ----------------------------------------------------------------------


def test_host_origin_content_type_and_api_key_are_checked():
    policy = AccessPolicy.create("127.0.0.1", ["proxy.example"], ["http://app.example"], "s3cret")
    client, service = make_client(policy=policy)
    key = {"authorization": "Bearer s3cret"}
    body = {"model": "scripted", "messages": HI}
    try:
        assert client.get("/health").status_code == 200  # no key needed
        assert client.get("/v1/models", headers=key).status_code == 200
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
            response = client.get("/v1/models", headers=headers)
            assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
        for host in ("attacker.test", "attacker.test:8000", "127.0.0.1.attacker.test"):
            response = client.get("/v1/models", headers={**key, "host": host})
            assert response.status_code == 403 and response.json()["error"]["code"] == "host_not_allowed"
        for host in ("localhost", "127.0.0.1:9", "[::1]:8000", "proxy.example", "PROXY.example:443"):
            assert client.get("/v1/models", headers={**key, "host": host}).status_code == 200, host
        foreign = client.post(
            "/v1/chat/completions",
            content=json.dumps(body),
            headers={**key, "origin": "http://evil.example", "content-type": "text/plain"},
        )
        assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
        plain = client.post(
            "/v1/chat/completions", content=json.dumps(body), headers={**key, "content-type": "text/plain"}
        )
        assert plain.status_code == 415 and plain.json()["error"]["code"] == "unsupported_media_type"
        ok = client.post("/v1/chat/completions", json=body, headers={**key, "origin": "http://app.example"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://app.example"
        preflight = client.options(
            "/v1/chat/completions",
            headers={
                "origin": "http://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204 and "Authorization" in preflight.headers["access-control-allow-headers"]
        assert (
            client.options(
                "/v1/chat/completions",
                headers={"origin": "http://evil.example", "access-control-request-method": "POST"},
            ).status_code
            == 403
        )
    finally:
        service.close()


def test_bound_to_every_interface_any_ip_host_passes_but_no_other_name():
    policy = AccessPolicy.create("0.0.0.0")
    assert policy.host_allowed("192.168.1.20:8000") and policy.host_allowed("[fe80::1]:8000")
    assert policy.host_allowed("localhost:8000") and not policy.host_allowed("rebind.attacker.test:8000")
    assert not AccessPolicy.create("127.0.0.1").host_allowed("192.168.1.20")
    assert AccessPolicy.create("127.0.0.1", ["*"]).host_allowed("anything.test")


def test_bad_access_flags_are_one_line_errors():
    from marco_cli.core.errors import UsageError

    with pytest.raises(UsageError, match="--cors takes an origin"):
        AccessPolicy.create("127.0.0.1", cors=["app.example/path"])
    with pytest.raises(UsageError, match="API key is empty"):
        AccessPolicy.create("127.0.0.1", api_key=" ")


# -- stopping requests ------------------------------------------------------------------


class SlowBackend(ScriptedBackend):
    """Each token waits for ``go`` (or ``pause`` seconds): a generation that
    runs as long as the test wants."""

    def __init__(self, pause: float = 10.0) -> None:
        super().__init__(thought_words=10_000)
        self.pause = pause
        self.go = threading.Event()
        self.generating = threading.Event()
        self.tokens = 0

    def extend(self, requests, on_token=None):
        def slow(index, piece):
            self.tokens += 1
            self.generating.set()
            self.go.wait(self.pause)
            if on_token is not None:
                on_token(index, piece)

        return super().extend(requests, slow)


def test_a_stopped_request_ends_at_the_next_token_and_the_next_request_runs():
    backend = SlowBackend()
    notes: list[str] = []
    client, service = make_client(backend, note=notes.append)
    try:
        call = service.call({"model": "scripted", "messages": HI, "max_tokens": 80})
        future, ticket = service.submit(call)
        assert backend.generating.wait(10)
        from marco_cli.server.stopping import Halt

        ticket.stop(Halt.GONE)
        backend.go.set()
        with pytest.raises(RequestError) as info:
            future.result(30)
        assert info.value.status == 499 and backend.tokens <= 2
        assert notes and "stopped a scripted request (client gone): " in notes[0] and "of at most 80" in notes[0]
        backend.generating.clear()
        response = client.post(
            "/v1/chat/completions", json={"model": "scripted+mcts", "messages": HI, "marco": {"simulations": 1}}
        )
        assert response.status_code == 200 and not service.running
    finally:
        backend.go.set()
        service.close()


def test_the_time_limit_returns_the_answer_so_far_as_length():
    backend = SlowBackend(pause=0.02)
    client, service = make_client(backend, limits=ServerLimits(seconds=0.2))
    try:
        for model in ("scripted", "scripted+mcts"):
            body = {"model": model, "messages": HI, "max_tokens": 80, "marco": {"simulations": 50}}
            if model == "scripted":
                del body["marco"]
            data = client.post("/v1/chat/completions", json=body).json()
            assert data["choices"][0]["finish_reason"] == "length"
            assert data["usage"]["marco"]["stopped_by"] == "time_limit"
        assert service.limits.seconds == 0.2
    finally:
        service.close()


def test_shutdown_stops_the_running_request_and_refuses_the_queued_ones():
    backend = SlowBackend()
    _client, service = make_client(backend)
    try:
        running, _ = service.submit(service.call({"model": "scripted", "messages": HI}))
        queued, _ = service.submit(service.call({"model": "scripted", "messages": HI}))
        assert backend.generating.wait(10)
        service.begin_shutdown()
        backend.go.set()
        for future in (running, queued):
            with pytest.raises(RequestError) as info:
                future.result(30)
            assert info.value.status == 503 and info.value.code == "shutting_down"
        with pytest.raises(RequestError, match="shutting down"):
            service.submit(service.call({"model": "scripted", "messages": HI}))
    finally:
        service.close()


FORMAT_REGISTRY = (
    'default = "r1"\n'
    '[models.r1]\npath = "/nowhere/r1.gguf"\nreasoning = "think"\n'
    '[models.plain]\npath = "/nowhere/plain.gguf"\nreasoning = "none"\n'
)


@pytest.mark.parametrize("mode", ["", "+mcts"])
def test_a_think_model_is_split_by_its_own_format_streamed_and_not(mode):
    """An R1-style model's <think> is the reasoning, the rest the answer, alike in
    both reply kinds, and no tag leaks into either."""
    registry = parse_registry(FORMAT_REGISTRY, Path("m.toml"))
    reasoner = Reasoner(resolve(registry, "r1"), backend=ScriptedBackend(style="think"))
    service = ChatService(reasoner, search=FAST_SEARCH, max_tokens=80)
    client = TestClient(create_app(service), base_url="http://localhost:8000")
    try:
        body = {"model": "r1" + mode, "messages": QUESTION, "seed": 3}
        message = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
        assert message["reasoning_content"].strip() and message["content"].strip()
        for text in (message["reasoning_content"], message["content"]):
            assert "think>" not in text and "Thought>" not in text and "Output>" not in text
        streamed = events(client.post("/v1/chat/completions", json={**body, "stream": True}))
        deltas = [e["choices"][0]["delta"] for e in streamed[:-1] if e.get("choices")]
        thought = "".join(d.get("reasoning_content") or "" for d in deltas)
        answer = "".join(d.get("content") or "" for d in deltas)
        assert (thought, answer) == (message["reasoning_content"], message["content"])
    finally:
        service.close()


def test_a_model_without_a_format_answers_after_its_marker():
    """A format-less model: the whole text is its reasoning, the answer is what
    follows its last Answer: line, streamed and not."""
    registry = parse_registry(FORMAT_REGISTRY, Path("m.toml"))
    reasoner = Reasoner(resolve(registry, "plain"), backend=ScriptedBackend(style="think"))
    service = ChatService(reasoner, search=FAST_SEARCH, max_tokens=80)
    client = TestClient(create_app(service), base_url="http://localhost:8000")
    try:
        body = {"model": "plain", "messages": QUESTION, "seed": 3}
        message = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
        streamed = events(client.post("/v1/chat/completions", json={**body, "stream": True}))
        deltas = [e["choices"][0]["delta"] for e in streamed[:-1] if e.get("choices")]
        assert "".join(d.get("reasoning_content") or "" for d in deltas) == message["reasoning_content"]
        assert "".join(d.get("content") or "" for d in deltas) == message["content"]
        assert message["content"] and message["content"] in message["reasoning_content"]
    finally:
        service.close()
