"""``marco serve`` for real: a subprocess on a free port with the embedded
SmolLM2, called with the official openai client and with litellm (plain and
streaming), by preset model ids and with bad requests; then stopped with
Ctrl-C (SIGINT). Tiny generations only."""

from __future__ import annotations

import signal
import socket

import httpx
import openai
import pytest
from child_env import run_marco
from serve_process import marco_env, start

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = start(
        tmp_path_factory.mktemp("serve_home"),
        "-m",
        "tiny",
        "--threads",
        "1",
        "--ctx",
        "2048",
        "--max-tokens",
        "16",
        "--simulations",
        "2",
        "--children",
        "2",
    )
    yield served
    served.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


def test_models_and_a_plain_answer(client):
    assert [m.id for m in client.models.list()] == [
        "smollm2-135m",
        "smollm2-135m+mcts",
        "smollm2-135m+mcts-quick",
        "smollm2-135m+mcts-mini64",
        "smollm2-135m+mcts-mini32",
        "smollm2-135m+vote",
    ]
    reply = client.chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "What is 2+2?"}],
        max_tokens=12,
    )
    message = reply.choices[0].message
    assert message.content and message.role == "assistant"
    assert isinstance(message.model_extra["reasoning_content"], str)
    assert 0 < reply.usage.completion_tokens <= 12 and reply.usage.model_extra["marco"]["mode"] == "cot"


def test_a_vote_through_the_real_server(client):
    reply = client.chat.completions.create(
        model="smollm2-135m+vote",
        messages=[{"role": "user", "content": "What is 2+2?"}],
        max_tokens=16,
        extra_body={"marco": {"samples": 3}},
    )
    marco = reply.usage.model_extra["marco"]
    assert reply.choices[0].message.content and marco["mode"] == "vote"
    assert marco["vote"]["samples"] == 3 and len(marco["vote"]["keys"]) == 3
    # the chosen chain is the completion; the two others were generated besides
    assert 0 < reply.usage.completion_tokens <= 16 and reply.usage.completion_tokens_details.reasoning_tokens > 0


def test_streaming_gives_the_same_answer(client):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 12}
    plain = client.chat.completions.create(**body).choices[0].message.content
    stream = client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        usage = chunk.usage or usage
    assert "".join(pieces) == plain  # temperature 0 by default: the same text
    assert usage is not None and usage.completion_tokens <= 12


def test_a_search_with_options_in_the_body(client):
    reply = client.chat.completions.create(
        model="smollm2-135m+mcts",
        messages=[{"role": "user", "content": "What is 2+2?"}],
        max_tokens=24,
        extra_body={"marco": {"simulations": 2, "children": 2, "step_max_tokens": 12}},
    )
    search = reply.usage.model_extra["marco"]["search"]
    assert search["simulations"] == 2 and 0.0 <= search["value"] <= 1.0
    assert reply.choices[0].message.content is not None


def test_presets_steer_the_search_without_a_body(client):
    reply = client.chat.completions.create(
        model="tiny+mcts-quick", messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=16
    )
    assert reply.model == "smollm2-135m+mcts-quick"
    usage = reply.usage
    search = usage.model_extra["marco"]["search"]
    assert search["simulations"] <= 4 and usage.model_extra["marco"]["mode"] == "mcts"
    reasoning = usage.completion_tokens_details.reasoning_tokens
    assert usage.completion_tokens + reasoning == search["tokens_generated"]
    assert usage.total_tokens == usage.prompt_tokens + search["tokens_generated"]


@pytest.mark.parametrize("question", ["What is 2+2?", "Is 91 prime?", "Name a colour."])
def test_streamed_and_plain_replies_split_the_same_way(client, question):
    body = {"model": "tiny", "messages": [{"role": "user", "content": question}], "max_tokens": 16}
    plain = client.chat.completions.create(**body).choices[0].message
    thought, answer = [], []
    for chunk in client.chat.completions.create(**body, stream=True):
        if chunk.choices:
            delta = chunk.choices[0].delta
            thought.append((delta.model_extra or {}).get("reasoning_content") or "")
            answer.append(delta.content or "")
    assert "".join(answer) == plain.content and "".join(thought) == plain.model_extra["reasoning_content"]
    assert "<Output>" not in plain.content and "<Thought>" not in plain.content


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # litellm's own, about pydantic
def test_litellm_plain_and_streaming(server, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    import litellm

    base = dict(
        model="openai/tiny",
        api_base=server.url,
        api_key="unused",
        max_tokens=12,
        messages=[{"role": "user", "content": "Name a colour."}],
    )
    plain = litellm.completion(**base)
    message = plain.choices[0].message
    assert message.content and message.reasoning_content is not None and plain.model == "smollm2-135m"
    assert plain.usage.completion_tokens <= 12 and plain.usage.completion_tokens_details.reasoning_tokens == 0
    pieces, usage = [], None
    for chunk in litellm.completion(**base, stream=True, stream_options={"include_usage": True}):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        usage = getattr(chunk, "usage", None) or usage
    assert "".join(pieces) == message.content and usage is not None and usage.completion_tokens <= 12
    searched = litellm.completion(**dict(base, model="openai/tiny+mcts"))
    assert searched.model == "smollm2-135m+mcts" and searched.choices[0].message.content is not None


def test_a_page_elsewhere_cannot_use_the_default_server(server):
    url = server.url
    probe = httpx.post(
        f"{url}/chat/completions",
        timeout=30,
        content=b'{"model": "tiny", "messages": []}',
        headers={"Origin": "http://attacker.test", "Host": "attacker.test", "Content-Type": "text/plain"},
    )
    assert probe.status_code == 403 and probe.json()["error"]["code"] == "host_not_allowed"
    cross = httpx.post(
        f"{url}/chat/completions",
        timeout=30,
        json={"model": "tiny", "messages": []},
        headers={"Origin": "http://attacker.test"},
    )
    assert cross.status_code == 403
    deep = httpx.post(
        f"{url}/chat/completions", content=b"[" * 100_000, timeout=30, headers={"content-type": "application/json"}
    )
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "invalid_json"


def test_bad_requests_are_4xx_json_and_the_server_keeps_answering(server, client):
    url = server.url
    bad = httpx.post(
        f"{url}/chat/completions",
        content=b'{"model": "tiny", "messages": [',
        timeout=30,
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "smollm2-135m+mcts" in str(info.value)
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(
            model="tiny+mcts", messages=[{"role": "user", "content": "hi"}], extra_body={"marco": {"simulatons": 2}}
        )
    assert next(m.id for m in client.models.list()) == "smollm2-135m"


def test_a_taken_port_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_marco("serve", "-m", "tiny", "--port", str(port), env=marco_env(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"marco: error: cannot listen on 127.0.0.1:{port}: the address is already in use"


def test_ctrl_c_stops_the_server(server):
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(60) == 130
    assert "interrupted" in server.stderr()
