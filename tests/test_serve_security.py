"""A real ``marco serve`` with an API key (from MARCO_API_KEY), one CORS
origin, one extra Host name and a small body limit, probed the way a hostile
web page and a careless client would: every refusal is a 4xx JSON error, and
the server goes on answering."""

from __future__ import annotations

import json

import httpx
import pytest
from serve_process import marco_env, start

pytestmark = pytest.mark.model

KEY = "test-key-5f2a"
AUTH = {"Authorization": f"Bearer {KEY}"}
HI = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_security")
    served = start(
        home,
        "-m",
        "tiny",
        "--cors",
        "http://app.example",
        "--allow-host",
        "proxy.example",
        "--limit",
        "body-bytes=4096",
        env=marco_env(home, MARCO_API_KEY=KEY),
    )
    yield served
    served.stop()


def post(server, body: bytes | dict, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    merged = {"Content-Type": "application/json", **AUTH, **(headers or {})}
    return httpx.post(f"{server.url}/chat/completions", content=content, headers=merged, timeout=120)


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def test_the_api_key_is_required_except_for_health(server):
    assert httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=30).json()["status"] == "ok"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": KEY}):
        response = httpx.get(f"{server.url}/models", headers=headers, timeout=30)
        assert response.status_code == 401 and error_code(response) == "invalid_api_key"
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{server.url}/models", headers=AUTH, timeout=30).status_code == 200
    assert post(server, HI, {"Authorization": ""}).status_code == 401


def test_a_foreign_page_cannot_drive_the_server(server):
    # The probe of the issue: a text/plain POST from another origin, under a rebinding host name.
    probe = post(server, HI, {"Origin": "http://attacker.test", "Host": "attacker.test", "Content-Type": "text/plain"})
    assert probe.status_code == 403 and error_code(probe) == "host_not_allowed"
    rebinding = post(server, HI, {"Host": f"attacker.test:{server.port}"})
    assert rebinding.status_code == 403 and error_code(rebinding) == "host_not_allowed"
    cross = post(server, HI, {"Origin": "http://attacker.test"})
    assert cross.status_code == 403 and error_code(cross) == "origin_not_allowed"
    form = post(server, HI, {"Content-Type": "text/plain"})
    assert form.status_code == 415 and error_code(form) == "unsupported_media_type"
    urlencoded = post(server, b"model=tiny", {"Content-Type": "application/x-www-form-urlencoded"})
    assert urlencoded.status_code == 415


def test_allowed_hosts_and_origins_get_through(server):
    assert post(server, HI, {"Host": "proxy.example"}).status_code == 200
    assert post(server, HI, {"Host": f"localhost:{server.port}"}).status_code == 200
    allowed = post(server, HI, {"Origin": "http://app.example", "Content-Type": "application/json; charset=utf-8"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://app.example"
    preflight = httpx.options(
        f"{server.url}/chat/completions",
        timeout=30,
        headers={
            "Origin": "http://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://app.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"[" * 3000, 400, "invalid_json"),  # deeper than the parser goes, within the 4 KB limit
        (
            b'{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "temperature": NaN}',
            400,
            "invalid_json",
        ),
        (
            b'{"model": "tiny+mcts", "messages": [{"role": "user", "content": "Hi"}], "marco": {"exploration": NaN}}',
            400,
            "invalid_json",
        ),
        (b'{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 0}', 400, "invalid_value"),
        (
            b'{"model": "tiny+mcts", "messages": [{"role": "user", "content": "Hi"}], "marco": {"simulations": 100000}}',
            400,
            "over_limit",
        ),
        (
            b'{"model": "tiny", "messages": [{"role": "user", "content": "' + b"x" * 5000 + b'"}]}',
            413,
            "body_too_large",
        ),
    ],
)
def test_hostile_bodies_are_4xx_json_and_the_server_goes_on(server, body, status, code):
    response = post(server, body)
    assert response.status_code == status and error_code(response) == code, response.text
    assert post(server, HI).status_code == 200
    assert "Traceback" not in server.stderr()


def test_a_body_larger_than_it_says_is_cut_off(server):
    # Content-Length small enough to pass, chunked body that keeps going.
    def chunks():
        yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}]}'

    response = httpx.post(
        f"{server.url}/chat/completions",
        content=chunks(),
        timeout=120,
        headers={"Content-Type": "application/json", **AUTH},
    )
    assert response.status_code == 413 and error_code(response) == "body_too_large"
