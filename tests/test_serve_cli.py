"""``marco serve`` for real: a subprocess on a free port with the embedded
SmolLM2, called with the official openai client (plain and streaming) and with
bad requests; then stopped with Ctrl-C (SIGINT). Tiny generations only."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai")

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 120
READY = re.compile(r"on (http://127\.0\.0\.1:\d+/v1)")


def marco(*args: str, home: Path, stderr) -> subprocess.Popen:
    env = dict(os.environ, MARCO_HOME=str(home), PYTHONPATH=str(ROOT), NO_COLOR="1")
    for var in ("MARCO_MODEL", "MARCO_MODELS", "MARCO_BACKEND", "MARCO_DEBUG"):
        env.pop(var, None)
    return subprocess.Popen([sys.executable, "-m", "marco_cli", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_home")
    log = home / "stderr.log"
    with log.open("wb") as err:
        proc = marco("serve", "-m", "tiny", "--port", "0", "--threads", "1", "--ctx", "2048",
                     "--max-tokens", "16", "--simulations", "2", "--children", "2", home=home, stderr=err)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not (match := READY.search(log.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"marco serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield match.group(1), proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0], api_key="unused", max_retries=0, timeout=120)


def test_models_and_a_plain_answer(client):
    assert [m.id for m in client.models.list()] == ["smollm2-135m", "smollm2-135m+mcts"]
    reply = client.chat.completions.create(
        model="smollm2-135m", messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=12,
    )
    message = reply.choices[0].message
    assert message.content and message.role == "assistant"
    # the embedded model has no thought format: no reasoning, said as null
    assert "reasoning_content" in message.model_extra and message.model_extra["reasoning_content"] is None
    assert 0 < reply.usage.completion_tokens <= 12 and reply.usage.model_extra["marco"]["mode"] == "cot"


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
        model="smollm2-135m+mcts", messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=24,
        extra_body={"marco": {"simulations": 2, "children": 2, "step_max_tokens": 12}},
    )
    search = reply.usage.model_extra["marco"]["search"]
    assert search["simulations"] == 2 and 0.0 <= search["value"] <= 1.0
    assert reply.choices[0].message.content is not None


def test_bad_requests_are_4xx_json_and_the_server_keeps_answering(server, client):
    url = server[0]
    bad = httpx.post(f"{url}/chat/completions", content=b'{"model": "tiny", "messages": [', timeout=30,
                     headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "smollm2-135m+mcts" in str(info.value)
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="tiny+mcts", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"marco": {"simulatons": 2}})
    assert [m.id for m in client.models.list()][0] == "smollm2-135m"


def test_a_taken_port_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = marco("serve", "-m", "tiny", "--port", str(port), home=tmp_path, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.decode().strip() == f"marco: error: cannot listen on 127.0.0.1:{port}: the address is already in use"


def test_ctrl_c_stops_the_server(server):
    _, proc, log = server
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert "interrupted" in log.read_text()
