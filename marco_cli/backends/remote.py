"""The Backend protocol on an OpenAI-compatible server: vLLM, llama.cpp's
``llama-server``, llama-cpp-python's server (``python -m llama_cpp.server``).

The search is unchanged; only where tokens come from differs. A handle is a
token path kept here, client-side; every request sends its whole path to
``/v1/completions`` (the servers' prefix caches make that cheap) with
``logprobs=5``, and each generated token's confidence is computed from the
returned top-5 log-probabilities (paper eq. 1, ``remote_wire.confidence``).
The chat template is applied locally (the Reasoner renders the prompt), which
is why the completions endpoint is used and not the chat one.

Two dialects, found by probing the server once:

- ``TOKENS`` (``/tokenize`` exists: llama-server, vLLM): prompts go as token
  ids and come back as token ids, so paths are exact, as locally. Requests are
  streamed; ``Stop`` rules are applied here, token by token, and the stream is
  closed at a stop, which ends the generation on the server.
- ``TEXT`` (only ``/extras/tokenize``: llama-cpp-python's server): prompts go
  as text and tokens come back as text. Its streamed text drops characters
  split across tokens, so it is asked for ``CHUNK_TOKENS`` tokens at a time,
  unstreamed, with the stops checked between chunks; the kept text is
  re-tokenised by the server, and confidences are mapped onto those tokens.

``extend`` runs its requests on a thread pool, at most ``concurrency`` (from
the registry entry) in flight; ``remote_http`` retries busy servers and turns
every failure into a one-line ``BackendError``.

Log-probabilities: llama-server, vLLM (default ``logprobs-mode``) and
llama-cpp-python report them from the raw logits, before temperature and
top-k/top-p, as the paper's eq. 1 wants. A server that reports them after
temperature scales every confidence, so values differ from a local run.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

from ..core.errors import BackendError, ContextOverflowError
from .remote_target import RemoteTarget
from ..core.settings import RuntimeSettings
from .base import BackendStats, Continuation, Handle, ModelInfo, Request, StopReason, TokenCallback
from .remote_http import Http
from .remote_probe import MARKER, Dialect, ServerFacts, no_logprobs, probe_server
from .remote_run import Run, State, kept_exact, kept_retokenized
from .remote_wire import Chunk, parse_choice, sse_events
from .stops import StopMatch

CHUNK_TOKENS = 32  # TEXT dialect: tokens asked for per request (the most generated past a stop)
TOP_LOGPROBS = 5
_MEMO_SIZE = 256


class RemoteBackend:
    def __init__(self, http: Http, facts: ServerFacts, info: ModelInfo) -> None:
        self._http = http
        self._facts = facts
        self.info = info
        self.stats = BackendStats()
        self._states: dict[Handle, State] = {}
        self._next = 1
        self._lock = threading.Lock()
        self._memo: OrderedDict[tuple[int, ...], str] = OrderedDict()  # token path -> text
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def connect(cls, target: RemoteTarget, runtime: RuntimeSettings | None = None, *,
                name: str | None = None, **http_options) -> RemoteBackend:
        """Reach the server, learn what it speaks, check it returns logprobs.
        ``http_options`` go to ``Http`` (tests pass a transport, retries, sleep)."""
        api_key = _api_key(target)
        http = Http(target.base_url, api_key=api_key, timeout=target.timeout,
                    concurrency=target.concurrency, **http_options)
        try:
            facts = probe_server(http, target)
        except BaseException:
            http.close()
            raise
        runtime = runtime or RuntimeSettings()
        info = ModelInfo(
            name=name or facts.model or target.base_url,
            path=target.base_url,
            n_ctx=target.n_ctx or facts.n_ctx or runtime.n_ctx,
            n_vocab=0,  # not told by OpenAI-compatible servers; nothing here needs it
            eos_tokens=facts.eos_tokens,
            chat_template=facts.chat_template,
            metadata={"server": target.base_url, "model": facts.model or "", "flavour": facts.flavour.value},
        )
        return cls(http, facts, info)

    @property
    def dialect(self) -> Dialect:
        return self._facts.dialect

    # -- tokens ----------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        if not text:
            return []
        if not special and self.dialect is Dialect.TEXT:
            self._refuse_markers(text)
        tokens = self._facts.tokenize(self._http, text, special=special)
        self._remember(tuple(tokens), text)
        return tokens

    def _refuse_markers(self, text: str) -> None:
        """A TEXT server (llama-cpp-python's) gets the prompt as text and reads
        control tokens in all of it: plain text holding one cannot be sent."""
        for match in MARKER.finditer(text):
            marker = match.group()
            if not _control_like(marker):  # "<b>", "[1]": text, whatever the vocabulary
                continue
            ids = self._facts.tokenize(self._http, marker, special=True)
            if len(ids) == 1:
                raise BackendError(
                    f"the text holds {marker!r}, a control token of this model, and "
                    f"{self._http.base_url} ({self._facts.flavour.value}) would read it as one",
                    hint="use llama-server or vLLM, which take token ids, or leave the marker out",
                )

    def detokenize(self, tokens: Sequence[int]) -> str:
        key = tuple(int(t) for t in tokens)
        if not key:
            return ""
        pieces = self._facts.pieces
        if all(t in pieces for t in key):
            return b"".join(pieces[t] for t in key).decode("utf-8", errors="replace")
        with self._lock:
            text = self._memo.get(key)
        if text is None:
            text = self._facts.detokenize(self._http, key)
            self._remember(key, text)
        return text

    def _remember(self, tokens: tuple[int, ...], text: str) -> None:
        with self._lock:
            self._memo[tokens] = text
            self._memo.move_to_end(tokens)
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)

    # -- states ----------------------------------------------------------------

    def root(self, prompt_tokens: Sequence[int]) -> Handle:
        tokens = tuple(int(t) for t in prompt_tokens)
        if not tokens:
            raise BackendError("cannot start from an empty prompt")
        if len(tokens) >= self.info.n_ctx:
            raise ContextOverflowError(
                f"the prompt has {len(tokens)} tokens but the server's context holds {self.info.n_ctx}",
                hint="use a shorter prompt, or a server with a longer context ('n_ctx' in the registry entry)",
            )
        text = self.detokenize(tokens) if self.dialect is Dialect.TEXT else None
        with self._lock:
            self.stats.prompt_tokens += len(tokens)
            self.stats.evaluated_tokens += len(tokens)
        return self._add(State(tokens, text))

    def _add(self, state: State) -> Handle:
        with self._lock:
            handle = self._next
            self._next += 1
            self._states[handle] = state
            self.stats.peak_live_sequences = max(self.stats.peak_live_sequences, len(self._states))
            return handle

    def _state(self, handle: Handle) -> State:
        with self._lock:
            state = self._states.get(handle)
        if state is None:
            raise BackendError(f"unknown or released state {handle}")
        return state

    def release(self, handle: Handle) -> None:
        with self._lock:
            self._states.pop(handle, None)

    def close(self) -> None:
        self._http.cancelled.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._http.close()
        with self._lock:
            self._states.clear()

    # -- extend ----------------------------------------------------------------

    def extend(self, requests: Sequence[Request], on_token: TokenCallback | None = None) -> list[Continuation]:
        """Run the requests, up to ``concurrency`` of them in flight at once."""
        runs = [self._start(i, req) for i, req in enumerate(requests)]  # bad handles fail here
        emit = _serialized(on_token)
        if len(runs) <= 1:
            return [self._execute(run, emit) for run in runs]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._facts.concurrency, thread_name_prefix="marco-remote")
        futures = [self._pool.submit(self._execute, run, emit) for run in runs]
        try:
            return [f.result() for f in futures]
        except BaseException:
            # One failed or Ctrl-C: stop the others, free what they kept, report the first.
            self._http.cancelled.set()
            wait(futures)
            self._http.cancelled.clear()
            for f in futures:
                if not f.cancelled() and f.exception() is None and f.result().handle is not None:
                    self.release(f.result().handle)
            raise

    def _start(self, index: int, request: Request) -> Run:
        state = self._state(request.parent)
        room = self.info.n_ctx - len(state.tokens)
        forced = tuple(int(t) for t in request.forced)[: max(0, room)]
        forced_text = self.detokenize(forced)
        pieces = self._facts.pieces
        if all(t in pieces for t in forced):
            forced_pieces = [pieces[t] for t in forced]
        else:  # the text on the last forced token, so the token count stays right
            forced_pieces = [b""] * (len(forced) - 1) + [forced_text.encode("utf-8")] if forced else []
        budget = max(0, min(request.max_tokens, room - len(forced)))
        run = Run(index, request, state, forced, forced_text, forced_pieces, budget)
        run.exact_pieces = all(t in pieces for t in forced)
        return run

    def _execute(self, run: Run, emit: TokenCallback | None) -> Continuation:
        request = run.request
        if request.max_tokens <= 0 or run.budget <= 0 or len(run.forced) < len(request.forced):
            full = len(run.forced) < len(request.forced) or (request.max_tokens > 0 and run.budget <= 0)
            return self._finish(run, StopReason.CONTEXT if full else StopReason.LENGTH, emit)
        if self.dialect is Dialect.TOKENS:
            return self._generate_streamed(run, emit)
        return self._generate_chunked(run, emit)

    def _body(self, run: Run, prompt: list[int] | str, max_tokens: int, *, stream: bool, seed: int) -> dict:
        s = run.request.sampling
        body = {
            "model": self._facts.model, "prompt": prompt, "max_tokens": max_tokens,
            "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "seed": seed,
            "logprobs": TOP_LOGPROBS, "stream": stream, **self._facts.sampling_extras(),
        }
        return body

    def _generate_streamed(self, run: Run, emit: TokenCallback | None) -> Continuation:
        prompt = list(run.state.tokens) + list(run.forced)
        body = self._body(run, prompt, run.budget, stream=True, seed=run.request.sampling.seed)
        self._count_call()
        eos = set(self.info.eos_tokens)
        finish = None
        with self._http.stream("/v1/completions", body) as response:
            for data in sse_events(response.iter_lines()):
                if self._http.cancelled.is_set():
                    raise KeyboardInterrupt
                chunk = self._checked(parse_choice(data))
                entries = chunk.entries
                ended = next((k for k, e in enumerate(entries) if e.id is not None and e.id in eos), None)
                if ended is not None:  # an end-of-turn token: the continuation ends before it
                    entries = entries[:ended]
                exact = all(e.piece is not None for e in entries)
                run.exact_pieces &= exact
                last = len(entries) - 1
                # Without each token's bytes, the event's text goes on its last token.
                pieces = [e.piece for e in entries] if exact else [b""] * last + [chunk.text.encode("utf-8")]
                for k, (entry, piece) in enumerate(zip(entries, pieces)):
                    run.shared_event = not exact and last > 0
                    match = run.add(entry, piece, clean=exact or k == last)
                    if match is not None:
                        return self._finish(run, match.stop.reason, emit, match=match)
                    self._stream(run, emit)
                    if run.n_sampled >= run.budget:
                        return self._finish(run, run.cap_reason(), emit)
                if ended is not None:
                    return self._finish(run, StopReason.EOS, emit)
                if chunk.finish is not None:
                    finish = chunk.finish
                    break
        if finish is None:
            # The events stopped without a finish reason: the server went away
            # mid-answer (killed, shutting down). Not an end of text.
            raise BackendError(
                f"{self._http.base_url}: the server stopped answering mid-stream",
                hint="is it still running?",
            )
        # "length" before our budget: the server's own context ran out
        return self._finish(run, StopReason.CONTEXT if finish == "length" else StopReason.EOS, emit)

    def _generate_chunked(self, run: Run, emit: TokenCallback | None) -> Continuation:
        k = 0
        while True:
            want = min(CHUNK_TOKENS, run.budget - run.n_sampled)
            seed = (run.request.sampling.seed + 7919 * k) & 0x7FFFFFFF
            body = self._body(run, (run.state.text or "") + run.text.text, want, stream=False, seed=seed)
            self._count_call()
            chunk = self._checked(parse_choice(self._http.post_json("/v1/completions", body)))
            match = run.add_chunk(chunk)
            if match is not None:
                return self._finish(run, match.stop.reason, emit, match=match)
            self._stream(run, emit)
            if chunk.finish == "stop" or not chunk.entries:
                return self._finish(run, StopReason.EOS, emit)
            if run.n_sampled >= run.budget:
                return self._finish(run, run.cap_reason(), emit)
            if len(chunk.entries) < want:  # the server's own context ran out
                return self._finish(run, StopReason.CONTEXT, emit)
            if self._http.cancelled.is_set():
                raise KeyboardInterrupt
            k += 1

    def _count_call(self) -> None:
        with self._lock:
            self.stats.decode_calls += 1  # one completion request

    def _checked(self, chunk: Chunk) -> Chunk:
        if chunk.entries is None or (chunk.text and not chunk.entries):
            raise no_logprobs(self._http.base_url)
        return chunk

    def _stream(self, run: Run, emit: TokenCallback | None) -> None:
        piece = run.text.streamable()
        if piece and emit is not None:
            emit(run.index, piece)

    # -- finishing -------------------------------------------------------------

    def _finish(self, run: Run, reason: StopReason, emit: TokenCallback | None,
                *, match: StopMatch | None = None) -> Continuation:
        cut = match.cut if match is not None else len(run.ids)
        # A kept stop inside an event of several tokens: which token holds its
        # end is unknown, so cut by characters there too.
        blurred = match is not None and match.stop.keep and run.shared_event
        if self.dialect is Dialect.TOKENS and all(t is not None for t in run.ids) and cut in run.clean and not blurred:
            tokens, text, confidences = kept_exact(run, cut, self._facts.pieces)
        else:
            retokenize = lambda text: self._facts.tokenize(self._http, text, special=True)  # noqa: E731
            tokens, text, confidences = kept_retokenized(run, match, retokenize, by_pieces=self.dialect is Dialect.TOKENS)
        piece = run.text.finish(text)
        if piece and emit is not None:
            emit(run.index, piece)
        n_forced = min(len(run.forced), len(tokens))
        with self._lock:
            self.stats.generated_tokens += len(tokens) - n_forced
            self.stats.evaluated_tokens += len(tokens)
        handle = None
        if run.request.keep:
            state = run.state
            handle = self._add(State(state.tokens + tokens, None if state.text is None else state.text + text))
        if tokens:
            self._remember(tokens, text)
        return Continuation(handle, tokens, text, tuple(confidences), reason, n_forced)


def _serialized(on_token: TokenCallback | None) -> TokenCallback | None:
    """Worker threads take turns calling back (the callback may print)."""
    if on_token is None:
        return None
    lock = threading.Lock()

    def emit(index: int, piece: str) -> None:
        with lock:
            on_token(index, piece)

    return emit


def _api_key(target: RemoteTarget) -> str | None:
    if target.api_key_env:
        value = os.environ.get(target.api_key_env)
        if not value:
            raise BackendError(
                f"the API key variable {target.api_key_env} is not set",
                hint=f"export {target.api_key_env}=... (the registry entry names it in 'api_key_env')",
            )
        return value
    return os.environ.get("MARCO_API_KEY") or None


def _control_like(marker: str) -> bool:
    """How control tokens are spelled: ``<|...|>``, ``<s>``/``</s>``, ``[INST]``-style capitals."""
    inner = marker[1:-1].strip("/")
    return "|" in marker or marker in ("<s>", "</s>", "<unk>", "<pad>") or (
        inner.replace("_", "").isalpha() and inner.isupper()
    )
