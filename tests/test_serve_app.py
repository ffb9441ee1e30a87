"""marco serve's app in-process, on the scripted backend (no model, no port):
the OpenAI shapes, streaming, the request queue and every error path."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marco_cli.core.errors import BackendError
from marco_cli.formats.prompts import parse_output
from marco_cli.reasoner import Reasoner
from marco_cli.models.registry import parse_registry, resolve
from marco_cli.server.app import create_app
from marco_cli.server.schema import ChatMessage, RequestError, conversation
from marco_cli.server.service import ChatService
from marco_cli.core.settings import SearchSettings
from scripted_backend import ScriptedBackend

REGISTRY = '[models.scripted]\npath = "/nowhere/scripted.gguf"\naliases = ["s"]\nthought_format = true\n'
QUESTION = [{"role": "user", "content": "What is 2+3?"}]
FAST_SEARCH = SearchSettings(simulations=3, children=2, max_tokens=80)


def make_client(backend=None, **service_options) -> tuple[TestClient, ChatService]:
    model = resolve(parse_registry(REGISTRY, Path("m.toml")), "scripted")
    reasoner = Reasoner(model, backend=backend or ScriptedBackend())
    service = ChatService(reasoner, search=FAST_SEARCH, max_tokens=80, **service_options)
    return TestClient(create_app(service)), service


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
            payload = line[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_models_lists_cot_and_mcts_ids(client):
    data = client.get("/v1/models").json()
    assert [m["id"] for m in data["data"]] == ["scripted", "scripted+mcts"]
    assert client.get("/v1/models/s+mcts").json()["id"] == "s+mcts"  # aliases work too
    assert client.get("/v1/models/nope").status_code == 404


def test_chat_completion_has_thought_answer_and_usage(client):
    data = client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION}).json()
    message = data["choices"][0]["message"]
    assert data["object"] == "chat.completion" and data["model"] == "scripted"
    assert message["role"] == "assistant" and message["content"] and message["reasoning_content"]
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert usage["marco"]["mode"] == "cot" and data["choices"][0]["finish_reason"] in ("stop", "length")


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


def test_messages_become_system_history_and_question():
    msgs = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="developer", content="No jokes."),
            ChatMessage(role="user", content="hi"), ChatMessage(role="assistant", content="hello"),
            ChatMessage(role="user", content=[{"type": "text", "text": "2+"}, {"type": "text", "text": "2?"}])]
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
        (b'{"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}', 404, "model_not_found", "scripted+mcts"),
        (b'{"model": "scripted"}', 422, "invalid_value", "messages"),
        (b'{"model": "scripted", "messages": []}', 422, "invalid_value", "at least 1"),
        (b'{"model": "scripted", "messages": [{"role": "tool", "content": "x"}]}', 422, "invalid_value", "messages.0.role"),
        (b'{"model": "scripted+mcts", "messages": [{"role": "user", "content": "hi"}], "marco": {"simulatoins": 2}}', 422, "invalid_value", "marco.simulatoins"),
        (b'{"model": "scripted+mcts", "messages": [{"role": "user", "content": "hi"}], "marco": {"simulations": 0}}', 400, "invalid_value", "simulations must be > 0"),
        (b'{"model": "scripted", "messages": [{"role": "user", "content": "hi"}], "temperature": 9}', 400, "invalid_value", "temperature"),
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


@pytest.mark.parametrize("error, words", [(BackendError("the KV cache is full"), "the KV cache is full"),
                                           (RuntimeError("boom"), "internal error: RuntimeError: boom")])
def test_model_failures_are_500_json_plain_and_streamed(error, words):
    client, service = make_client(FailingBackend(error))
    try:
        response = client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION})
        assert response.status_code == 500 and words in response.json()["error"]["message"]
        streamed = events(client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION, "stream": True}))
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
        results.append(client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION}).status_code)

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
