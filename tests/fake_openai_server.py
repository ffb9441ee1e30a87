"""A scripted OpenAI-compatible completions server, as an httpx transport.

``dialect="tokens"`` speaks like llama.cpp's llama-server (``/tokenize``,
token-id prompts, streamed ``logprobs.content`` with ids and bytes);
``dialect="text"`` like llama-cpp-python's server (``/extras/tokenize``, text
prompts, the legacy ``tokens/token_logprobs/top_logprobs`` layout). One token
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
    "<Thought>\nHmm.\n\nIt is 4.\n</Thought>\n<Output>\nIt is 4\n</Output>",
]
ENDING = "\n</Thought>\n<Output>\n4\n</Output>"


def tokenize(text: str) -> list[int]:
    out, i = [], 0
    while i < len(text):
        for tid, s in SPECIAL.items():
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


def logprob(position: int, seed: int) -> float:
    return -0.05 - 0.3 * ((position * 7 + seed) % 10)


TOPS = (-0.05, -1.0, -2.0, -3.0, -4.0)


class FakeServer:
    def __init__(self, dialect: str = "tokens", *, logprobs: bool = True, fail: tuple = (),
                 delay: float = 0.0, models: tuple[str, ...] = ("fake-model",), n_ctx: int | None = None) -> None:
        self.dialect = dialect
        self.logprobs = logprobs
        self.fail = list(fail)  # (status, headers[, message]) answers for the next completion calls
        self.delay = delay
        self.models = models
        self.n_ctx = n_ctx
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
            if self.n_ctx and self.dialect == "tokens":
                cards = [dict(c, max_model_len=self.n_ctx) for c in cards]
            return httpx.Response(200, json={"object": "list", "data": cards})
        if self.dialect == "tokens" and path == "/tokenize":
            ids = tokenize(body["content"])
            return httpx.Response(200, json={"tokens": [{"id": t, "piece": detokenize([t])} for t in ids]})
        if self.dialect == "tokens" and path == "/detokenize":
            return httpx.Response(200, json={"content": detokenize(body["tokens"])})
        if self.dialect == "text" and path == "/extras/tokenize":
            return httpx.Response(200, json={"tokens": tokenize(body["input"])})
        if self.dialect == "text" and path == "/extras/detokenize":
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
        for script in SCRIPTS:
            if written and script.startswith(written):
                return script[len(written):]
        if not written:
            return SCRIPTS[seed % len(SCRIPTS)]
        return "" if "</Output>" in written else ENDING

    # -- wire formats -----------------------------------------------------------

    def _entries(self, out: str, seed: int, start: int = 0):
        if not self.logprobs:
            return None
        if self.dialect == "tokens":
            return {"content": [
                {"id": ord(c), "token": c, "bytes": list(c.encode()), "logprob": logprob(start + i, seed),
                 "top_logprobs": [{"id": 33 + k, "token": "x", "bytes": [120], "logprob": v} for k, v in enumerate(TOPS)]}
                for i, c in enumerate(out)
            ]}
        return {
            "tokens": list(out), "text_offset": list(range(len(out))),
            "token_logprobs": [logprob(start + i, seed) for i in range(len(out))],
            "top_logprobs": [dict(zip("abcde", TOPS)) | {c: logprob(start + i, seed)} for i, c in enumerate(out)],
        }

    def _response(self, out: str, finish: str, seed: int) -> dict:
        choice = {"text": out, "index": 0, "logprobs": self._entries(out, seed), "finish_reason": finish}
        return {"id": "cmpl-1", "object": "text_completion", "choices": [choice]}

    def _stream(self, out: str, finish: str, seed: int) -> httpx.Response:
        server = self

        class Events(httpx.SyncByteStream):
            def __iter__(self):
                for i, c in enumerate(out):
                    choice = {"text": c, "index": 0, "logprobs": server._entries(c, seed, i), "finish_reason": None}
                    yield f"data: {json.dumps({'choices': [choice]})}\n\n".encode()
                done = {"text": "", "index": 0, "logprobs": None, "finish_reason": finish}
                yield f"data: {json.dumps({'choices': [done]})}\n\ndata: [DONE]\n\n".encode()

            def close(self):
                pass

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Events())


def expected_confidence(position: int, seed: int, dialect: str = "tokens") -> float:
    """Paper eq. 1 on the fake's numbers (the text dialect lists the token itself too)."""
    import math

    lp = logprob(position, seed)
    top = sorted(TOPS + ((lp,) if dialect == "text" else ()), reverse=True)[:5]
    shift = max(top[0], lp)
    return min(1.0, math.exp(lp - shift) / sum(math.exp(t - shift) for t in top))
