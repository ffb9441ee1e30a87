"""The remote backend against a scripted OpenAI-compatible server (no network):
llama-server, vLLM and llama-cpp-python layouts, stop rules, confidences, limits, concurrency, retries, errors,
and an MCTS search through it."""

from __future__ import annotations

import httpx
import pytest

from fake_openai_server import ENDING, IM_END, SCRIPTS, FakeServer, expected_confidence, tokenize
from typer.testing import CliRunner

from marco_cli.backends.base import Request, Sampling, Stop, StopReason
from marco_cli.backends.remote import CHUNK_TOKENS, RemoteBackend
from marco_cli.backends.remote_probe import Dialect
from marco_cli.backends.remote_wire import NoLogprobs, TokenEntry, confidence
from marco_cli.cli import app
from marco_cli.core.errors import BackendError, ContextOverflowError
from marco_cli.models.registry import RemoteTarget
from marco_cli.search import run_search
from marco_cli.core.settings import SearchSettings

PROMPT = "USER: what is 2+2?\nASSISTANT:"
OUTPUT_STOP = Stop("</Output>", StopReason.OUTPUT_END)
KINDS = ["llama-server", "vllm", "llama-cpp-python"]


class FakeClock:
    """Time that passes only by sleeping: retry windows without waiting."""

    def __init__(self, sleeps: list) -> None:
        self.now = 0.0
        self.sleeps = sleeps

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def connect(server: FakeServer, *, sleeps: list | None = None, transport=None, **target) -> RemoteBackend:
    target.setdefault("concurrency", 4)
    clock = FakeClock(sleeps if sleeps is not None else [])
    return RemoteBackend.connect(
        RemoteTarget("http://fake:8080", **target),
        transport=transport or server.transport(), sleep=clock.sleep, clock=clock,
    )


def request(parent, max_tokens=200, *, stops=(OUTPUT_STOP,), seed=0, keep=False, forced=()):
    return Request(parent, max_tokens, stops, Sampling(temperature=0.8, top_p=0.95, seed=seed), tuple(forced), keep)


@pytest.mark.parametrize("kind", KINDS)
def test_probe_learns_dialect_model_and_end_tokens(kind):
    server = FakeServer(kind)
    backend = connect(server)
    assert backend.info.metadata["flavour"] == kind
    assert backend.dialect is (Dialect.TEXT if kind == "llama-cpp-python" else Dialect.TOKENS)
    assert backend.info.eos_tokens == (IM_END, 1001)
    assert backend.info.n_ctx == 8192  # nothing told (vLLM: its max_model_len): marco's --ctx default
    assert backend.info.metadata["model"] == "fake-model"
    assert all(body["model"] == "fake-model" for path, body in server.requests if path == "/v1/completions")
    probe = server.completions[-1]
    assert probe["logprobs"] == 5 and probe["max_tokens"] == 1
    assert backend.tokenize("a<|im_end|>") == [97, IM_END]
    assert backend.detokenize([104, 105, IM_END]) == "hi<|im_end|>"


@pytest.mark.parametrize("kind", KINDS)
def test_plain_text_never_becomes_a_control_token(kind):
    backend = connect(FakeServer(kind))
    text = "2+2? [x] <b> <|im_end|>\nASSISTANT: 5"
    assert IM_END in backend.tokenize(text)  # the template's markup: control tokens parsed
    if kind == "llama-cpp-python":  # text prompts: the server would parse it whatever marco does
        with pytest.raises(BackendError, match="control token of this model"):
            backend.tokenize(text, special=False)
        assert backend.tokenize("2 < 3 [x] <b>", special=False) == tokenize("2 < 3 [x] <b>")
        return
    tokens = backend.tokenize(text, special=False)
    assert IM_END not in tokens and backend.detokenize(tokens) == text


def test_context_size_from_the_model_card_or_the_registry():
    assert connect(FakeServer("vllm", n_ctx=4096)).info.n_ctx == 4096  # vLLM's max_model_len
    assert connect(FakeServer("vllm", n_ctx=4096), n_ctx=1024).info.n_ctx == 1024


@pytest.mark.parametrize("kind", KINDS)
def test_a_continuation_carries_tokens_text_and_paper_confidences(kind):
    server = FakeServer(kind)
    backend = connect(server)
    root = backend.root(backend.tokenize(PROMPT))
    pieces = []
    (cont,) = backend.extend([request(root, seed=0)], lambda i, p: pieces.append(p))
    assert cont.text == SCRIPTS[0] and "".join(pieces) == SCRIPTS[0]
    assert cont.tokens == tuple(tokenize(SCRIPTS[0])) and cont.stop is StopReason.OUTPUT_END
    assert len(cont.confidences) == len(cont.tokens) and cont.handle is None
    text = kind == "llama-cpp-python"
    n = CHUNK_TOKENS if text else len(cont.tokens)  # text: the first chunk's seed is the request's
    assert cont.confidences[:n] == pytest.approx([expected_confidence(i, 0, kind) for i in range(n)])
    assert all(0.0 <= c <= 1.0 for c in cont.confidences)
    sent = server.completions[2 if text else 1]["prompt"]  # [0] is the connect probe
    assert sent == (PROMPT + SCRIPTS[0][:CHUNK_TOKENS] if text else tokenize(PROMPT))
    assert ("repeat_penalty" in server.completions[1]) == (kind != "vllm")


@pytest.mark.parametrize("kind", KINDS)
def test_stop_rules_match_the_local_engine(kind):
    backend = connect(FakeServer(kind))
    root = backend.root(backend.tokenize(PROMPT))
    step = (Stop("\n\n", StopReason.DELIMITER, needs_content=True), Stop("</Thought>", StopReason.THOUGHT_END), OUTPUT_STOP)
    (first,) = backend.extend([request(root, stops=step, keep=True)])
    assert first.text == "<Thought>\nFirst, 2+2.\n\n" and first.stop is StopReason.DELIMITER
    # keep=False drops the stop text from the continuation and from the state
    reflect = (OUTPUT_STOP, Stop("</Thought>", StopReason.THOUGHT_END, keep=False))
    (thought,) = backend.extend([request(first.handle, stops=reflect, keep=True)])
    assert thought.text == "So it is 4.\n" and thought.stop is StopReason.THOUGHT_END
    assert len(thought.confidences) == len(thought.tokens)
    # forced tokens come first, carry no confidence, and the model goes on after them
    forced = backend.tokenize("Wait!")
    (after,) = backend.extend([request(thought.handle, forced=forced)])
    assert after.text == "Wait!" + ENDING and after.n_forced == len(forced)
    assert after.tokens[: len(forced)] == tuple(forced) and len(after.confidences) == after.n_sampled
    assert backend.detokenize(first.tokens + thought.tokens + after.tokens).endswith("</Output>")


LOOPING = "<Thought>\nHmm.\n</Thought>\n<Output>\n" + "Output: \nSTARTER\n" * 100 + "</Output>"


@pytest.mark.parametrize("kind", KINDS)
def test_the_loop_guard_ends_a_repeating_continuation_here_too(kind):
    backend = connect(FakeServer(kind, scripts=[LOOPING]))
    root = backend.root(backend.tokenize(PROMPT))
    sampling = Sampling(temperature=0.8, top_p=0.95, seed=0)
    guarded = Request(root, 2000, (OUTPUT_STOP,), sampling, loop_guard=True, keep=False)
    (cont,) = backend.extend([guarded])
    assert cont.stop is StopReason.LOOP
    assert LOOPING.startswith(cont.text) and len(cont.text) < len(LOOPING) // 3
    assert len(cont.confidences) == len(cont.tokens)
    (free,) = backend.extend([Request(root, 2000, (OUTPUT_STOP,), sampling, keep=False)])
    assert free.stop is StopReason.OUTPUT_END and free.text == LOOPING


@pytest.mark.parametrize("kind", KINDS)
def test_length_eos_and_context_limits(kind):
    backend = connect(FakeServer(kind), n_ctx=len(PROMPT) + 40)
    root = backend.root(backend.tokenize(PROMPT))
    (short,) = backend.extend([request(root, 5)])
    assert short.stop is StopReason.LENGTH and len(short.tokens) == 5
    (full,) = backend.extend([request(root, 100)])
    assert full.stop is StopReason.CONTEXT and len(full.tokens) == 40
    (only_forced,) = backend.extend([request(root, 0, forced=backend.tokenize("ok"))])
    assert only_forced.stop is StopReason.LENGTH and only_forced.text == "ok"
    with pytest.raises(ContextOverflowError, match="context holds"):
        backend.root(backend.tokenize(PROMPT + "x" * 40))
    big = connect(FakeServer(kind))
    (ended,) = big.extend([request(big.root(big.tokenize(PROMPT)), 500, stops=())])
    assert ended.stop is StopReason.EOS and ended.text == SCRIPTS[0]


@pytest.mark.parametrize("kind", ["llama-server", "vllm"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_end_of_turn_token_ends_the_continuation_and_is_dropped(kind, seed):
    backend = connect(FakeServer(kind, eos_token=True))
    (cont,) = backend.extend([request(backend.root(backend.tokenize(PROMPT)), 500, stops=(), seed=seed)])
    assert cont.stop is StopReason.EOS and cont.text == SCRIPTS[seed]
    assert IM_END not in cont.tokens and len(cont.confidences) == len(cont.tokens)


@pytest.mark.parametrize("kind", KINDS)
def test_requests_run_concurrently_and_come_back_in_order(kind):
    server = FakeServer(kind, delay=0.05)
    backend = connect(server, concurrency=3)
    root = backend.root(backend.tokenize(PROMPT))
    results = backend.extend([request(root, 400, seed=i) for i in range(6)])
    assert [r.text for r in results] == [SCRIPTS[i % 3] for i in range(6)]
    assert 2 <= server.max_in_flight <= 3
    assert backend.stats.generated_tokens == sum(r.n_sampled for r in results)


def test_retries_with_backoff_and_retry_after():
    server, sleeps = FakeServer(), []
    backend = connect(server, sleeps=sleeps)
    server.fail = [(503, {}), (429, {"Retry-After": "0.25"}), (502, {})]
    (cont,) = backend.extend([request(backend.root(backend.tokenize(PROMPT)))])
    assert cont.text == SCRIPTS[0]
    assert sleeps == [0.5, 0.25, 2.0]


def test_busy_servers_are_retried_within_the_request_timeout():
    server, sleeps = FakeServer(), []
    backend = connect(server, sleeps=sleeps, timeout=20)
    server.fail = [(503, {})] * 100
    with pytest.raises(BackendError, match=r"answered 503 Service Unavailable after 6 tries: fake 503"):
        backend.extend([request(backend.root(backend.tokenize(PROMPT)))])
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]  # 15.5 s waited; 8 more would pass the 20 s timeout
    server.fail = [(429, {"Retry-After": "600"})]  # a long Retry-After is capped, and must fit the timeout
    sleeps.clear()
    with pytest.raises(BackendError, match="429 Too Many Requests"):
        backend.extend([request(backend.root(backend.tokenize(PROMPT)))])
    assert sleeps == []
    backend = connect(server, sleeps=sleeps, timeout=120)
    server.fail = [(503, {}), (429, {"Retry-After": "600"})]
    (cont,) = backend.extend([request(backend.root(backend.tokenize(PROMPT)))])
    assert cont.text == SCRIPTS[0] and sleeps == [0.5, 30.0]

def test_a_client_error_is_not_retried():
    server, sleeps = FakeServer(), []
    backend = connect(server, sleeps=sleeps)
    server.fail = [(400, {}, "bad sampling")]
    with pytest.raises(BackendError, match="answered 400 Bad Request: bad sampling"):
        backend.extend([request(backend.root(backend.tokenize(PROMPT)))])
    assert sleeps == []


def test_a_server_without_logprobs_is_a_clear_error():
    with pytest.raises(NoLogprobs, match="does not return token logprobs") as info:
        connect(FakeServer(logprobs=False))
    assert "--logits_all true" in str(info.value)
    sleeps = []
    server = FakeServer("llama-cpp-python", fail=[(500, {}, "logprobs is not supported for models created with logits_all=False")])
    with pytest.raises(NoLogprobs):
        connect(server, sleeps=sleeps)
    assert sleeps == []  # asking again would not help


def test_timeouts_and_unreachable_servers_are_one_line_errors():
    server = FakeServer()

    def slow(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v1/completions" and server.completions:
            raise httpx.ReadTimeout("timed out", request=req)
        return server.handle(req)

    backend = connect(server, transport=httpx.MockTransport(slow), timeout=7)
    with pytest.raises(BackendError, match="did not answer within 7 s"):
        backend.extend([request(backend.root(backend.tokenize(PROMPT)))])
    sleeps = []
    with pytest.raises(BackendError, match="cannot connect") as info:
        RemoteBackend.connect(RemoteTarget("http://127.0.0.1:9"), sleep=sleeps.append)
    assert sleeps == [] and "\n" not in str(info.value)  # never reached: a wrong URL, said at once


def test_wrong_model_missing_tokenizer_and_missing_api_key(monkeypatch):
    with pytest.raises(BackendError, match="does not serve a model 'other'; it serves: fake-model"):
        connect(FakeServer(), model="other")
    bare = FakeServer()

    def no_tokenizer(req: httpx.Request) -> httpx.Response:
        if "tokenize" in req.url.path:
            return httpx.Response(404, json={"detail": "Not Found"})
        return bare.handle(req)

    with pytest.raises(BackendError, match="no tokenizer endpoint"):
        connect(bare, transport=httpx.MockTransport(no_tokenizer))
    with pytest.raises(BackendError, match="FAKE_KEY is not set"):
        connect(FakeServer(), api_key_env="FAKE_KEY")
    monkeypatch.setenv("FAKE_KEY", "s3cret")
    server = FakeServer()
    connect(server, api_key_env="FAKE_KEY")
    assert server.headers["authorization"] == "Bearer s3cret"


def test_confidence_is_paper_eq1_over_the_top5():
    entry = TokenEntry(1, b"a", "a", -1.0, (-0.5, -1.0, -2.0, -3.0, -4.0, -9.0))
    import math

    denom = sum(math.exp(v) for v in (-0.5, -1.0, -2.0, -3.0, -4.0))
    assert confidence(entry) == pytest.approx(math.exp(-1.0) / denom)
    outside = TokenEntry(1, b"a", "a", -6.0, (-0.5, -1.0, -2.0, -3.0, -4.0, -6.0))
    assert confidence(outside) < 0.2
    assert confidence(TokenEntry(1, b"a", "a", float("-inf"), (-1.0,))) == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_mcts_runs_unchanged_on_the_remote_backend(kind):
    server = FakeServer(kind)
    backend = connect(server)
    settings = SearchSettings(simulations=4, children=2, max_tokens=120, seed=1)
    result = run_search(backend, backend.tokenize(PROMPT), settings)
    assert result.answer_text.endswith("</Output>") and result.stats.simulations == 4
    assert 0.0 <= result.value <= 1.0
    assert all(0.0 <= n.mean_value <= 1.0 for n in result.root.walk())
    assert not backend._states  # every handle the search took was released


def test_ask_with_an_unreachable_backend_is_one_line():
    result = CliRunner().invoke(app, ["ask", "-m", "tiny", "--backend", "http://127.0.0.1:9", "--mode", "cot", "hi"])
    assert result.exit_code == 1
    assert result.stderr.startswith("marco: error: http://127.0.0.1:9: cannot connect (connection refused)")


class Dying:
    """A transport that answers through the fake server until ``after``
    completion requests, then behaves like a killed server: streams cut off
    mid-answer, and every later connection refused."""

    def __init__(self, server: FakeServer, after: int) -> None:
        self.server, self.after, self.refused = server, after, 0

    def handle(self, req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v1/completions" and len(self.server.completions) >= self.after:
            if len(self.server.completions) == self.after:
                response = self.server.handle(req)  # this one is cut after its first events
                lines = response.read().split(b"\n\n")[:2]
                return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b"\n\n".join(lines) + b"\n\n")
            self.refused += 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=req)
        return self.server.handle(req)


def test_a_stream_that_stops_without_finishing_is_an_error_not_an_answer():
    server = FakeServer()
    dying = Dying(server, after=1)  # the probe's completion is number 0
    backend = connect(server, transport=httpx.MockTransport(dying.handle))
    with pytest.raises(BackendError, match="stopped answering mid-stream"):
        backend.extend([request(backend.root(backend.tokenize(PROMPT)))])


def test_a_server_gone_after_answering_is_retried_briefly_then_reported():
    server, sleeps = FakeServer(), []
    dying = Dying(server, after=1)
    server.completions.append({})  # skip the cut-off stream: straight to refused connections
    backend = connect(server, sleeps=sleeps, transport=httpx.MockTransport(dying.handle))
    with pytest.raises(BackendError, match=r"cannot connect \(connection refused\) \(tried 4 times in 3.5 s\)"):
        backend.extend([request(backend.root(backend.tokenize(PROMPT)))])
    assert sleeps == [0.5, 1.0, 2.0]  # within RECONNECT_WINDOW (5 s)


@pytest.mark.parametrize("after", [4, 9])
def test_a_search_outlives_its_server_with_the_best_answer_so_far(after):
    from marco_cli.search import StoppedBy

    server = FakeServer()
    dying = Dying(server, after=after)
    backend = connect(server, transport=httpx.MockTransport(dying.handle))
    settings = SearchSettings(simulations=12, children=2, max_tokens=120, seed=1)
    result = run_search(backend, backend.tokenize(PROMPT), settings)
    assert result.stopped_by is StoppedBy.BACKEND_FAILED
    assert result.error and "\n" not in result.error and "http://fake:8080" in result.error
    assert 0 < result.stats.simulations < 12 and result.stats.nodes > 1
    if result.rollouts:  # a finished rollout existed: the answer is a whole one
        assert result.complete and result.answer_text.endswith("</Output>")
    assert not backend._states  # every handle released
    assert len(server.completions) == after + 1  # nothing asked of a dead server but the retries' connects


def test_backend_without_a_model_name_asks_the_server_what_it_runs():
    from marco_cli.backends.remote_identity import identify
    from marco_cli.models.registry import load_registry

    registry = load_registry()
    target = RemoteTarget("http://fake:8080")
    smol = FakeServer(models=("SmolLM2-135M-Instruct.Q4_1.gguf",))
    found = identify(registry, target, transport=smol.transport())
    assert found.model.label == "smollm2-135m:Q4_1" and found.model.entry.name == "smollm2-135m"
    assert found.model.remote.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "runs 'SmolLM2-135M-Instruct.Q4_1.gguf'" in found.notice and "\n" not in found.notice

    vllm = FakeServer("vllm", models=("AIDC-AI/Marco-o1",))  # a repo id: the model, not a quant
    found = identify(registry, target, transport=vllm.transport())
    assert found.model.label == "marco-o1" and found.model.entry.thought_format

    other = FakeServer(models=("/models/Llama-3.2-1B-Instruct-Q8_0.gguf",))
    found = identify(registry, target, transport=other.transport())
    assert found.model.label == "/models/Llama-3.2-1B-Instruct-Q8_0.gguf"  # what the server runs, as it says
    assert found.model.entry.reasoning.value == "none"
    assert "not in the registry" in found.notice and "ChatML" in found.notice


def test_llama_server_prompt_cache_is_off_unless_the_entry_asks():
    server = FakeServer()
    backend = connect(server)
    backend.extend([request(backend.root(backend.tokenize(PROMPT)))])
    assert all(body["cache_prompt"] is False for body in server.completions)
    server = FakeServer()
    backend = connect(server, cache_prompt=True)
    backend.extend([request(backend.root(backend.tokenize(PROMPT)))])
    assert all(body["cache_prompt"] is True for body in server.completions)
    vllm = FakeServer("vllm")  # not a llama-server field: not sent
    backend = connect(vllm)
    assert all("cache_prompt" not in body for body in vllm.completions)
