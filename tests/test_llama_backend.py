"""The llama.cpp backend on the real SmolLM2 GGUF: loading, tokens, and the tree engine.

Threads as marco chooses them by default (``backends/threads.py``): the
test suite runs on busy machines, which is what that default is for.

Reference decodes use llama-cpp-python's high-level ``Llama`` with flash
attention (as the engine), so a shared-KV continuation must match token for
token. Tests check behaviour, never timings.
"""

from __future__ import annotations

import numpy as np
import pytest

from marco_cli.backends.base import Backend, Request, Sampling, Stop, StopReason
from marco_cli.backends.llama import LlamaBackend, gpu_offload_supported
from marco_cli.core.errors import BackendError, ContextOverflowError, ModelLoadError, ModelNotFoundError
from marco_cli.core.settings import KVCacheType, RuntimeSettings

GREEDY = Sampling(temperature=0.0)
QUESTION = "Explain step by step why the sky is blue, then give a short summary."


def chat(backend: LlamaBackend, text: str) -> list[int]:
    return backend.tokenize(f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def backend(smol_gguf) -> LlamaBackend:
    b = LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=4096), name="smol")
    yield b
    b.close()


@pytest.fixture
def fresh(smol_gguf) -> LlamaBackend:
    """A backend with an empty cache, for exact comparisons with a plain decode.

    Bitwise equality holds while a path's KV cells lie in position order, as in
    a plain decode: flash attention sums over cells in cache order, so once
    freed holes get reused the sums round differently (~1e-3 on logits) and a
    greedy near-tie may flip. The shared module backend has many such holes.
    """
    # One thread, as the reference: a one-token decode over 512+ cells rounds
    # its attention differently per thread count (threads.py).
    b = LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=2048, n_threads=1), name="smol")
    yield b
    b.close()


@pytest.fixture(scope="module")
def reference(smol_gguf):
    from llama_cpp import Llama

    llm = Llama(str(smol_gguf), n_ctx=1024, n_threads=1, flash_attn=True, logits_all=True, verbose=False)

    def greedy(tokens: list[int], n: int) -> list[int]:
        llm.reset()
        llm.eval(tokens)
        out = []
        for _ in range(n):
            out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
            llm.eval([out[-1]])
        return out

    yield greedy
    llm.close()


@pytest.fixture(scope="module")
def prompt(backend) -> list[int]:
    return chat(backend, QUESTION)


# -- loading -----------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFoundError, match=r"model file not found: .*nope.gguf"):
        LlamaBackend.load(path, RuntimeSettings(n_threads=1), name="x")


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"<html>not a model</html>")
    with pytest.raises(ModelLoadError, match="is not a GGUF model file"):
        LlamaBackend.load(path, RuntimeSettings(n_threads=1), name="x")


@pytest.mark.model
def test_truncated_file_is_one_clean_line_and_quiet(tmp_path, smol_gguf, capfd):
    path = tmp_path / "cut.gguf"
    path.write_bytes(smol_gguf.read_bytes()[:2_000_000])
    with pytest.raises(ModelLoadError) as err:
        LlamaBackend.load(path, RuntimeSettings(n_threads=1), name="x")
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert capfd.readouterr().err == ""  # llama.cpp's C-level log stays silent


@pytest.mark.model
def test_info(backend, smol_gguf):
    info = backend.info
    assert isinstance(backend, Backend)
    assert info.name == "smol" and info.path == str(smol_gguf)
    assert info.n_ctx == 4096 and info.n_vocab == 49152
    assert set(backend.tokenize("<|im_end|><|endoftext|>")) <= set(info.eos_tokens)
    assert info.chat_template and "im_start" in info.chat_template
    assert info.metadata["general.architecture"] == "llama"
    assert isinstance(gpu_offload_supported(), bool)


@pytest.mark.model
def test_the_default_threads_follow_the_models_size(backend, smol_gguf):
    # 135M of weights: one-token decodes on one thread (threads.py); batches governed
    governor = backend.engine.kv.threads
    assert governor.single == 1 and len(governor.choices) == len(set(governor.choices))
    with LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=512, n_threads=2), name="smol") as fixed:
        assert fixed.engine.kv.threads.single == 2 and fixed.engine.kv.threads.choices == [2]


@pytest.mark.model
def test_quantized_kv_cache_generates(smol_gguf, prompt):
    runtime = RuntimeSettings(n_ctx=512, kv_cache=KVCacheType.Q8_0, n_threads=1)
    with LlamaBackend.load(smol_gguf, runtime, name="smol") as b:
        res = b.extend([Request(b.root(prompt), 8, sampling=GREEDY)])[0]
    assert len(res.tokens) == 8


# -- tokens ------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.parametrize("text", ["Hello, world!", "你好，世界 踩屎感", "emoji 🌍🚀 naïve café", "<|im_end|>"])
def test_tokenize_round_trip(backend, text):
    assert backend.detokenize(backend.tokenize(text)) == text


@pytest.mark.model
def test_special_tokens_are_parsed_only_when_asked(backend):
    assert len(backend.tokenize("<|im_end|>")) == 1
    assert len(backend.tokenize("<|im_end|>", special=False)) > 1


@pytest.mark.model
def test_detokenize_joins_split_characters(backend):
    tokens = backend.tokenize("🌍")
    assert len(tokens) > 1  # byte-level pieces, each alone invalid UTF-8
    assert backend.detokenize(tokens) == "🌍"


# -- generation --------------------------------------------------------------


@pytest.mark.model
def test_greedy_matches_plain_decode_alone_and_batched(fresh, reference, prompt):
    expected = reference(prompt, 32)
    root = fresh.root(prompt)
    results = fresh.extend([Request(root, 32, sampling=GREEDY)] * 3)
    assert [list(r.tokens) for r in results] == [expected] * 3
    assert all(r.stop is StopReason.LENGTH for r in results)


@pytest.mark.model
def test_forked_path_matches_plain_decode_of_the_whole_path(fresh, reference, prompt):
    expected = reference(prompt, 36)
    root = fresh.root(prompt)
    a = fresh.extend([Request(root, 12, sampling=GREEDY)])[0]
    # A sibling from the same root in between must not disturb a's state.
    fresh.extend([Request(root, 5, sampling=Sampling(seed=3))])
    b = fresh.extend([Request(a.handle, 12, sampling=GREEDY), Request(root, 4, sampling=Sampling(seed=4))])[0]
    c = fresh.extend([Request(b.handle, 12, sampling=GREEDY)])[0]
    assert list(a.tokens + b.tokens + c.tokens) == expected


@pytest.mark.model
def test_same_seed_alone_or_in_a_batch(backend, prompt):
    root = backend.root(prompt)
    other = backend.extend([Request(root, 3, sampling=GREEDY)])[0].handle
    s = Sampling(temperature=0.8, seed=42)
    alone = backend.extend([Request(root, 32, sampling=s)])[0]
    batch = backend.extend(
        [
            Request(other, 20, sampling=Sampling(seed=1)),
            Request(root, 32, sampling=s),
            Request(root, 32, sampling=Sampling(seed=2)),
        ]
    )
    assert batch[1].tokens == alone.tokens
    assert batch[1].confidences == pytest.approx(alone.confidences)


@pytest.mark.model
def test_confidences_and_exact_length(backend, prompt):
    root = backend.root(prompt)
    results = backend.extend([Request(root, 32, sampling=Sampling(seed=s)) for s in range(3)])
    for r in results:
        assert len(r.confidences) == len(r.tokens) == r.n_sampled
        assert all(0.0 <= c <= 1.0 for c in r.confidences)
        assert len(r.tokens) == 32 or r.stop is StopReason.EOS
        assert r.text == backend.detokenize(r.tokens)


@pytest.mark.model
def test_eos_ends_without_the_eos_token(backend):
    res = backend.extend([Request(backend.root(chat(backend, "What is the capital of France?")), 64, sampling=GREEDY)])[
        0
    ]
    assert res.stop is StopReason.EOS
    assert not set(res.tokens) & set(backend.info.eos_tokens) and "<|im_end|>" not in res.text


def _first_prefix(backend, tokens, pred) -> int:
    return next(n for n in range(1, len(tokens) + 1) if pred(backend.detokenize(tokens[:n])))


@pytest.mark.model
def test_stop_needs_content(fresh, reference, prompt):
    expected = reference(prompt, 48)
    text = fresh.detokenize(expected)
    word = text.split()[0]
    root = fresh.root(prompt)
    plain = fresh.extend([Request(root, 48, (Stop(word, StopReason.DELIMITER),), GREEDY)])[0]
    assert plain.stop is StopReason.DELIMITER and word in plain.text
    assert len(plain.tokens) == _first_prefix(fresh, expected, lambda t: word in t)
    content = fresh.extend([Request(root, 48, (Stop(word, StopReason.DELIMITER, needs_content=True),), GREEDY)])[0]
    if word in text[text.index(word) + 1 :]:
        n = _first_prefix(fresh, expected, lambda t: word in t[t.index(word) + 1 :])
        assert content.stop is StopReason.DELIMITER and len(content.tokens) == n
    else:
        assert content.stop is StopReason.LENGTH and len(content.tokens) == 48


@pytest.mark.model
def test_stop_keep_false_trims_tokens_and_state(fresh, reference, prompt):
    expected = reference(prompt, 64)
    text = fresh.detokenize(expected)
    stop_text = text[len(text) // 2 :][:6]  # a string in the middle of the greedy text
    root = fresh.root(prompt)
    streamed = []
    res = fresh.extend(
        [Request(root, 64, (Stop(stop_text, StopReason.THOUGHT_END, keep=False),), GREEDY)],
        on_token=lambda i, piece: streamed.append(piece),
    )[0]
    assert res.stop is StopReason.THOUGHT_END and stop_text not in res.text
    n = len(res.tokens)
    assert list(res.tokens) == expected[:n] and len(res.confidences) == n
    assert stop_text in fresh.detokenize(expected[: n + 3])  # cut at the token where it begins
    assert "".join(streamed) == res.text
    # The state continues right after the kept tokens.
    nxt = fresh.extend([Request(res.handle, 8, sampling=GREEDY)])[0]
    assert list(nxt.tokens) == expected[n : n + 8]


@pytest.mark.model
def test_forced_tokens(fresh, reference, prompt):
    forced = tuple(fresh.tokenize("Wait! Maybe I made some mistakes!"))
    expected = reference(prompt + list(forced), 10)
    root = fresh.root(prompt)
    res = fresh.extend([Request(root, 10, sampling=GREEDY, forced=forced)])[0]
    assert res.tokens[: len(forced)] == forced and res.n_forced == len(forced)
    assert list(res.tokens[len(forced) :]) == expected and len(res.confidences) == 10
    only = fresh.extend([Request(root, 0, forced=forced)])[0]
    assert only.tokens == forced and only.confidences == () and only.text.startswith("Wait!")
    after = fresh.extend([Request(only.handle, 10, sampling=GREEDY)])[0]
    assert list(after.tokens) == expected


@pytest.mark.model
def test_on_token_pieces_concatenate_to_the_text(backend):
    root = backend.root(chat(backend, "Write three emojis and a Chinese greeting."))
    pieces: dict[int, list[str]] = {0: [], 1: []}
    results = backend.extend(
        [Request(root, 24, sampling=Sampling(seed=s)) for s in range(2)],
        on_token=lambda i, p: pieces[i].append(p),
    )
    for i, r in enumerate(results):
        assert "".join(pieces[i]) == r.text


@pytest.mark.model
def test_keep_false_and_release_free_sequences(backend, prompt):
    root = backend.root(prompt)
    live = backend.engine.kv.live
    res = backend.extend([Request(root, 4, sampling=Sampling(seed=9), keep=False)])[0]
    assert res.handle is None and backend.engine.kv.live == live
    kept = backend.extend([Request(root, 4, sampling=Sampling(seed=9))])[0]
    assert backend.engine.kv.live == live + 1
    backend.release(kept.handle)
    assert backend.engine.kv.live == live
    with pytest.raises(BackendError):
        backend.extend([Request(kept.handle, 4)])


@pytest.mark.model
def test_pending_token_decoded_once_for_all_children(backend, prompt):
    root = backend.root(prompt)
    before = backend.stats.evaluated_tokens, backend.stats.generated_tokens
    backend.extend([Request(root, 16, sampling=Sampling(seed=s)) for s in range(3)])
    evaluated = backend.stats.evaluated_tokens - before[0]
    generated = backend.stats.generated_tokens - before[1]
    assert evaluated == 1 + generated - 3  # the shared pending token; each last token stays pending


@pytest.mark.model
def test_root_reuses_a_cached_prefix(fresh, prompt):
    first = fresh.root(prompt)
    before = fresh.stats.prompt_tokens
    longer = prompt + fresh.tokenize("Sure. <|im_end|>\n<|im_start|>user\nAnd why is it red at sunset?")
    fresh.root(longer)
    assert fresh.stats.prompt_tokens - before == len(longer) - len(prompt)
    # Released roots (the previous chat turn) keep their cells for reuse.
    second = fresh.root(longer)
    fresh.release(first)
    fresh.release(second)
    suffix = fresh.tokenize(" Something else entirely.")
    before = fresh.stats.prompt_tokens
    fresh.root(prompt + suffix)
    assert fresh.stats.prompt_tokens - before == len(suffix) - 1


# -- context limits and eviction -----------------------------------------------


@pytest.fixture(scope="module")
def small(smol_gguf) -> LlamaBackend:
    b = LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=256, n_threads=1), name="smol")
    yield b
    b.close()


@pytest.mark.model
def test_prompt_longer_than_the_context(small):
    tokens = small.tokenize("word " * 300)
    with pytest.raises(ContextOverflowError) as err:
        small.root(tokens)
    assert f"{len(tokens)} tokens" in str(err.value) and "256" in str(err.value)
    assert "--ctx" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.model
def test_context_stop(small):
    prompt = small.tokenize(
        "<|im_start|>user\n" + "Tell me a long story. " * 36 + "<|im_end|>\n<|im_start|>assistant\n"
    )
    assert 200 < len(prompt) < 240
    root = small.root(prompt)
    res = small.extend([Request(root, 100, sampling=Sampling(seed=1, temperature=1.5))])[0]
    if res.stop is not StopReason.EOS:
        assert res.stop is StopReason.CONTEXT and len(prompt) + len(res.tokens) == 256
        again = small.extend([Request(res.handle, 10)])[0]
        assert again.stop is StopReason.CONTEXT and again.tokens == ()


def _chain(b: LlamaBackend, prompt: list[int]) -> list[tuple[int, ...]]:
    """Greedy chain root -> n1 -> ... -> n5, then back to every earlier node."""
    handles, out = [b.root(prompt)], []
    for _ in range(5):
        res = b.extend([Request(handles[-1], 8, sampling=GREEDY)])[0]
        handles.append(res.handle)
        out.append(res.tokens)
    for h in handles[:-1]:
        out.append(b.extend([Request(h, 8, sampling=GREEDY)])[0].tokens)
    return out


@pytest.mark.model
def test_eviction_by_sequence_limit_gives_the_same_greedy_tokens(smol_gguf, fresh, prompt):
    expected = _chain(fresh, prompt)
    with LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=2048, n_threads=1), name="s", max_sequences=2) as tiny:
        assert _chain(tiny, prompt) == expected
        assert tiny.stats.peak_live_sequences <= 2


@pytest.mark.model
def test_eviction_by_full_cache_rebuilds_the_same_states(smol_gguf, prompt):
    # 256 cells hold the prompt and about 9 of the 18 branches: the older
    # ones must make room and be rebuilt when they are visited again.
    with LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=256, n_threads=1), name="s") as tiny:
        frontier = [tiny.root(prompt)]
        for step in range(6):
            parent = frontier[(step * 2) % len(frontier)]
            kids = tiny.extend([Request(parent, 24, sampling=Sampling(seed=10 * step + k)) for k in range(3)])
            assert [len(r.tokens) for r in kids] == [24] * 3 or any(r.stop is StopReason.EOS for r in kids)
            frontier += [r.handle for r in kids]
        paths = [tiny.engine.kv.get(h).path for h in frontier]
        got = [tiny.engine.next_logits(h) for h in frontier]
        assert tiny.stats.rebuilt_tokens > 0
    with LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=2048, n_threads=1), name="s") as big:
        want = [big.engine.next_logits(big.root(path)) for path in paths]
    # Freed cells get reused out of position order and flash attention then sums
    # in another order (see ``fresh``): logits agree up to rounding noise (~1),
    # while a wrong or shifted context differs by far more (> 10).
    for g, w in zip(got, want):
        assert np.abs(g - w).max() < 2.5


class _Alternating:
    """Stands in for the thread governor: flips 1 <-> 2 threads on every decode
    of several tokens (the only ones it governs)."""

    def __init__(self, lib, ctx) -> None:
        self.lib, self.ctx, self.calls = lib, ctx, 0

    def decode(self, run, size):
        if size > 1:
            self.calls += 1
            n = 1 + self.calls % 2
            self.lib.llama_set_n_threads(self.ctx, n, n)
        return run()


@pytest.mark.model
def test_switching_thread_counts_mid_run_changes_no_token(smol_gguf):
    # The governor may change the count between any two decodes of several
    # tokens; a seeded search must still give the same tree. The long prompt
    # puts over 512 cells in the cache, where flash attention could split
    # cells among threads.
    requests = lambda root: [  # noqa: E731
        Request(root, max_tokens=24, sampling=Sampling(temperature=0.8, seed=s), keep=False) for s in (1, 2, 3)
    ]
    outs = []
    for switching in (False, True):
        with LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=1024, n_threads=1), name="s") as b:
            kv = b.engine.kv
            if switching:
                kv.threads = _Alternating(b._lib, kv.ctx)
            root = b.root(chat(b, " ".join([QUESTION] * 40)))
            assert len(b.engine.kv.get(root).path) > 600
            outs.append([(c.tokens, c.confidences) for c in b.extend(requests(root))])
            if switching:
                assert kv.threads.calls > 20
    assert outs[0] == outs[1]


@pytest.mark.model
def test_default_threads_are_governed(smol_gguf):
    from marco_cli.backends.threads import candidates
    from marco_cli.core.machine import physical_cores

    with LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=512), name="s") as b:
        gov = b.engine.kv.threads
        assert gov.choices == candidates(physical_cores())
        root = b.root(chat(b, "Hi"))
        b.extend([Request(root, max_tokens=4, sampling=GREEDY, keep=False)])
        assert gov.current in gov.choices
    with LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=512, n_threads=1), name="s") as b:
        assert b.engine.kv.threads.choices == [1]


@pytest.mark.model
def test_ctx_above_the_training_context_is_capped_unless_forced(smol_gguf):
    import llama_cpp

    for n_ctx, force, cells, said in (
        (100_000, False, 8192, "using 8192 (--force-ctx keeps 100000: KV cache "),
        (9216, True, 9216, "kept (--force-ctx): KV cache "),
        (4096, False, 4096, None),
    ):
        notices: list[str] = []
        runtime = RuntimeSettings(n_ctx=n_ctx, n_threads=1, force_ctx=force)
        with LlamaBackend.load(smol_gguf, runtime, name="smol", notify=notices.append) as b:
            assert llama_cpp.llama_n_ctx(b.engine.kv.ctx) == cells
            assert b.info.n_ctx == min(n_ctx, 8192)
        if said is None:
            assert notices == []
        else:
            (line,) = notices
            assert (
                line.startswith(f"--ctx {n_ctx} is above the 8192 tokens this model was trained for") and said in line
            )
            assert "MiB instead of 180 MiB" in line or "GiB instead of 180 MiB" in line
