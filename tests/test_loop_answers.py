"""A looping answer as the user meets it, on the scripted backend: CoT stops
early and says so (``stop`` in --json, a notice in chat), and marco serve
reports it as cut short (``finish_reason: length``), not as a natural stop."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from scripted_backend import ScriptedBackend

from marco_cli.backends.base import StopReason
from marco_cli.core.settings import GenerationSettings, Mode, SearchSettings
from marco_cli.models.registry import parse_registry, resolve
from marco_cli.reasoner import Reasoner
from marco_cli.server.app import create_app
from marco_cli.server.service import ChatService

REGISTRY = '[models.scripted]\npath = "/nowhere/scripted.gguf"\nthought_format = true\n'
QUESTION = [{"role": "user", "content": "What is 2+3?"}]
MAX_TOKENS = 400


def reasoner(**backend_options) -> Reasoner:
    model = resolve(parse_registry(REGISTRY, Path("m.toml")), "scripted")
    return Reasoner(model, backend=ScriptedBackend(**backend_options))


def test_a_looping_chain_of_thought_stops_early_and_says_so():
    r = reasoner(loop_rate=1.0)
    answer = r.ask("What is 2+3?", generation=GenerationSettings(max_tokens=MAX_TOKENS))
    assert answer.stop is StopReason.LOOP and answer.looped
    assert answer.generated_tokens < MAX_TOKENS
    assert answer.to_json()["stop"] == "loop"
    free = r.ask("What is 2+3?", generation=GenerationSettings(max_tokens=MAX_TOKENS, loop_guard=False))
    assert free.stop is StopReason.LENGTH and free.generated_tokens == MAX_TOKENS


def test_a_normal_answer_reports_its_own_stop():
    answer = reasoner().ask("What is 2+3?", generation=GenerationSettings(max_tokens=MAX_TOKENS))
    assert answer.to_json()["stop"] in ("output_end", "eos") and not answer.looped


def test_json_reports_the_vote_and_every_pick():
    answer = reasoner(answers=("five ",)).ask(
        "What is 2+3?", mode=Mode.MCTS, search=SearchSettings(simulations=4, early_stop=0.75)
    )
    search = answer.to_json()["search"]
    assert search["stopped_by"] == "early_stop" and search["vote"]["answer"] == "five"
    assert set(search["picks"]) == {"most-visited", "best-value", "vote"}
    assert search["picks"]["vote"]["answer"] == "five"


def _client(**backend_options):
    model = resolve(parse_registry(REGISTRY, Path("m.toml")), "scripted")
    service = ChatService(
        Reasoner(model, backend=ScriptedBackend(**backend_options)),
        search=SearchSettings(simulations=2, children=2, max_tokens=MAX_TOKENS),
        max_tokens=MAX_TOKENS,
    )
    return TestClient(create_app(service), base_url="http://localhost:8000"), service


def test_serve_reports_a_loop_as_cut_short():
    client, service = _client(loop_rate=1.0)
    try:
        for model in ("scripted", "scripted+mcts"):
            data = client.post("/v1/chat/completions", json={"model": model, "messages": QUESTION}).json()
            assert data["choices"][0]["finish_reason"] == "length", model
            assert data["usage"]["completion_tokens"] < MAX_TOKENS * (1 if model == "scripted" else 8)
    finally:
        service.close()
    client, service = _client()
    try:
        data = client.post("/v1/chat/completions", json={"model": "scripted", "messages": QUESTION}).json()
        assert data["choices"][0]["finish_reason"] == "stop"
    finally:
        service.close()
