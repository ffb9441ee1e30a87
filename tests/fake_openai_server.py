"""A scripted OpenAI-compatible completions server, as an httpx transport.

``kind="llama-server"`` speaks like llama.cpp's server (``/tokenize`` with
pieces, token-id prompts, streamed ``logprobs.content`` with ids and bytes);
``kind="vllm"`` like vLLM (``/tokenize`` with ``max_model_len``, token-id
prompts, the legacy logprobs layout with ``token_id:N`` tokens, two tokens per
streamed event); ``kind="llama-cpp-python"`` like ``python -m llama_cpp.server``
(``/extras/tokenize``, text prompts, the legacy layout with token text). One token
per character (id = code point); ``<|im_end|>`` is token 1000. The "model"
writes one of ``SCRIPTS`` after the last ``ASSISTANT:`` in the prompt (picked
by the seed, or by what was already written), then stops.
"""

from __future__ import annotations

import json
import threading
import time

import httpx

ASSISTANT = "ASSISTANT:"
IM_END = 1000
SPECIAL = {IM_END: "<|im_end|>", 1001: "<|endoftext|>"}
SCRIPTS = [
    "<Thought>\nFirst, 2+2.\n\nSo it is 4.\n</Thought>\n<Output>\n4\n</Output>",
    "<Thought>\nAdd two and two.\n\nFour.\n</Thought>\n<Output>\nfour\n</Output>",
    "<Thought>\nHmm.\n\nIt is 4.\n</Thought>\n<Output>\nIt's 4\n</Output>",
]
ENDING = "\n</Thought>\n<Output>\n4\n</Output>"
EOS_CHAR = "\ue000"  # stands for <|im_end|> in the fake's output when it sends that token


def tokenize(text: str, special: bool = True) -> list[int]:
    """vLLM and llama-cpp-python read control tokens in any text; llama-server
    only with ``parse_special`` (``special=False`` here)."""
    out, i = [], 0
    while i < len(text):
        for tid, s in SPECIAL.items() if special else ():
            if text.startswith(s, i):
                out.append(tid)
                i += len(s)
                break
        else:
            out.append(ord(text[i]))
            i += 1
    return out


def detokenize(tokens: list[int]) -> str:
    return "".join(SPECIAL.get(t, chr(t)) for t in tokens)


def tid(char: str) -> int:
    return IM_END if char == EOS_CHAR else ord(char)


def shown(text: str) -> str:
    """Servers do not write special tokens into the text."""
    return text.replace(EOS_CHAR, "")


def logprob(position: int, seed: int) -> float:
    return -0.05 - 0.3 * ((position * 7 + seed) % 10)


TOPS = (-0.05, -1.0, -2.0, -3.0, -4.0)


class FakeServer:
    def __init__(self, kind: str = "llama-server", *, logprobs: bool = True, fail: tuple = (),
                 delay: float = 0.0, models: tuple[str, ...] = ("fake-model",), n_ctx: int | None = None,
                 eos_token: bool = False, scripts: list[str] | None = None) -> None:
        self.kind = kind
        self.scripts = scripts or SCRIPTS  # what the "model" may write
        self.logprobs = logprobs
        self.fail = list(fail)  # (status, headers[, message]) answers for the next completion calls
        self.delay = delay
        self.models = models
        self.n_ctx = n_ctx
        self.eos_token = eos_token  # send the end-of-turn token itself before stopping
        self.requests: list[tuple[str, dict]] = []
        self.completions: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.headers: dict[str, str] = {}
        self._lock = threading.Lock()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- routes ----------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content or b"null")
        with self._lock:
            self.requests.append((path, body))
            self.headers = dict(request.headers)
        if path == "/v1/models" and request.method == "GET":
            cards = [{"id": m, "object": "model"} for m in self.models]
            if self.n_ctx and self.kind == "vllm":
                cards = [dict(c, max_model_len=self.n_ctx) for c in cards]
            return httpx.Response(200, json={"object": "list", "data": cards})
        if self.kind == "llama-server" and path == "/tokenize":
            ids = tokenize(body["content"], special=body.get("parse_special", True))
            return httpx.Response(200, json={"tokens": [{"id": t, "piece": detokenize([t])} for t in ids]})
        if self.kind == "llama-server" and path == "/detokenize":
            return httpx.Response(200, json={"content": detokenize(body["tokens"])})
        if self.kind == "vllm" and path == "/tokenize":
            ids = tokenize(body["prompt"])
            return httpx.Response(200, json={"tokens": ids, "count": len(ids), "max_model_len": self.n_ctx or 8192})
        if self.kind == "vllm" and path == "/detokenize":
            return httpx.Response(200, json={"prompt": detokenize(body["tokens"])})
        if self.kind == "llama-cpp-python" and path == "/extras/tokenize":
            return httpx.Response(200, json={"tokens": tokenize(body["input"])})
        if self.kind == "llama-cpp-python" and path == "/extras/detokenize":
            return httpx.Response(200, json={"text": detokenize(body["tokens"])})
        if path == "/v1/completions":
            return self._completion(body)
        return httpx.Response(404, json={"detail": "Not Found"})

    def _completion(self, body: dict) -> httpx.Response:
        with self._lock:
            self.completions.append(body)
            if self.fail:
                status, headers, *message = self.fail.pop(0)
                text = message[0] if message else f"fake {status}"
                return httpx.Response(status, headers=headers, json={"error": {"message": text}})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            prompt = body["prompt"]
            text = prompt if isinstance(prompt, str) else detokenize(prompt)
            out = self._continue(text, int(body.get("seed") or 0))[: body["max_tokens"]]
            finish = "length" if len(out) == body["max_tokens"] else "stop"
            if body.get("stream"):
                return self._stream(out, finish, int(body.get("seed") or 0))
            return httpx.Response(200, json=self._response(out, finish, int(body.get("seed") or 0)))
        finally:
            with self._lock:
                self.in_flight -= 1

    def _continue(self, prompt: str, seed: int) -> str:
        written = prompt.rsplit(ASSISTANT, 1)[-1] if ASSISTANT in prompt else ""
        end = EOS_CHAR if self.eos_token else ""
        for script in self.scripts:
            if written and script.startswith(written):
                return script[len(written):] + end
        if not written:
            return self.scripts[seed % len(self.scripts)] + end
        return end if "</Output>" in written else ENDING + end

    # -- wire formats -----------------------------------------------------------

    def _entries(self, out: str, seed: int, start: int = 0):
        if not self.logprobs:
            return None
        if self.kind == "llama-server":
            return {"content": [
                {"id": tid(c), "token": shown(c), "bytes": list(shown(c).encode()), "logprob": logprob(start + i, seed),
                 "top_logprobs": [{"id": 33 + k, "token": "x", "bytes": [120], "logprob": v} for k, v in enumerate(TOPS)]}
                for i, c in enumerate(out)
            ]}
        ids = self.kind == "vllm"
        assert not ids or self.completions[-1].get("return_tokens_as_token_ids") is True
        name = (lambda c: f"token_id:{tid(c)}") if ids else shown
        others = [f"token_id:{33 + k}" for k in range(5)] if ids else list("abcde")
        return {
            "tokens": [name(c) for c in out], "text_offset": list(range(len(out))),
            "token_logprobs": [logprob(start + i, seed) for i in range(len(out))],
            "top_logprobs": [dict(zip(others, TOPS)) | {name(c): logprob(start + i, seed)} for i, c in enumerate(out)],
        }

    def _response(self, out: str, finish: str, seed: int) -> dict:
        choice = {"text": shown(out), "index": 0, "logprobs": self._entries(out, seed), "finish_reason": finish}
        return {"id": "cmpl-1", "object": "text_completion", "choices": [choice]}

    def _stream(self, out: str, finish: str, seed: int) -> httpx.Response:
        server = self

        class Events(httpx.SyncByteStream):
            def __iter__(self):
                step = 2 if server.kind == "vllm" else 1  # vLLM may put several tokens in one event
                for i in range(0, len(out), step):
                    text = out[i:i + step]
                    choice = {"text": shown(text), "index": 0, "logprobs": server._entries(text, seed, i), "finish_reason": None}
                    yield f"data: {json.dumps({'choices': [choice]})}\n\n".encode()
                done = {"text": "", "index": 0, "logprobs": None, "finish_reason": finish}
                yield f"data: {json.dumps({'choices': [done]})}\n\ndata: [DONE]\n\n".encode()

            def close(self):
                pass

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Events())


def expected_confidence(position: int, seed: int, kind: str = "llama-server") -> float:
    """Paper eq. 1 on the fake's numbers (the legacy layout lists the token itself too)."""
    import math

    lp = logprob(position, seed)
    top = sorted(TOPS + ((lp,) if kind != "llama-server" else ()), reverse=True)[:5]
    shift = max(top[0], lp)
    return min(1.0, math.exp(lp - shift) / sum(math.exp(t - shift) for t in top))
