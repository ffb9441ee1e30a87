"""llama.cpp adapter: load a GGUF file, tokenize, and run the search tree.

The only module (with ``llama_tree``) that imports ``llama_cpp``, and only
lazily, so the search and its tests run without it. It talks to llama.cpp's
low-level API directly: one model, one context with a unified KV cache and
flash attention, one KV sequence per live search node (docs/engine.md).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import BackendError, ModelLoadError, ModelNotFoundError
from ..core.settings import KVCacheType, RuntimeSettings
from .base import BackendStats, Continuation, Handle, ModelInfo, Request, TokenCallback
from .context_size import _notice, context_cells, kv_bytes_per_cell
from .threads import configure_openmp

if TYPE_CHECKING:  # imported lazily at load time: it needs llama_cpp
    from .llama_tree import TreeEngine

GGUF_MAGIC = b"GGUF"
_END_TEXTS = ("<|im_end|>", "<|endoftext|>")  # ChatML end markers (docs/algorithm.md section 1)


def _llama_cpp() -> Any:
    configure_openmp()  # before libgomp loads with llama_cpp (threads.py)
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise BackendError("llama-cpp-python is not installed", hint="pip install llama-cpp-python") from exc
    return llama_cpp


class _Logging:
    """llama.cpp writes its logs straight to C stderr; keep it quiet unless verbose.

    The callback object must stay referenced while llama.cpp may call it, hence
    a class attribute rather than a local.
    """

    quiet_callback: Any = None

    @classmethod
    def configure(cls, llama_cpp: Any, verbose: bool) -> None:
        if verbose:
            from llama_cpp import _logger

            _logger.set_verbose(True)
            llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
            return
        if cls.quiet_callback is None:
            cls.quiet_callback = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(cls.quiet_callback, ctypes.c_void_p(0))


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build can offload layers to a GPU."""
    return bool(_llama_cpp().llama_supports_gpu_offload())


def check_gguf_file(path: Path) -> None:
    """Fail early, with a clear message, before llama.cpp sees the file."""
    if not path.is_file():
        raise ModelNotFoundError(f"model file not found: {path}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF model file")


class Vocab:
    """Tokenizer side of a loaded model (token ids <-> bytes)."""

    def __init__(self, llama_cpp: Any, vocab: Any) -> None:
        self._lib = llama_cpp
        self._vocab = vocab
        self._pieces: dict[int, bytes] = {}
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        for _ in range(2):
            buf = (self._lib.llama_token * capacity)()
            # add_special=False: the chat template decides about BOS, not us.
            n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, capacity, False, special)
            if n >= 0:
                return list(buf[:n])
            capacity = -n
        raise BackendError(f"cannot tokenize a text of {len(data)} bytes")

    def piece(self, token: int) -> bytes:
        """Raw bytes of one token (special tokens rendered as their text)."""
        cached = self._pieces.get(token)
        if cached is None:
            buf = ctypes.create_string_buffer(64)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
            cached = self._pieces[token] = buf.raw[: max(n, 0)]
        return cached

    def detokenize(self, tokens: Sequence[int]) -> str:
        # Decode the bytes of the whole sequence at once: a character split
        # across tokens is only valid once both halves are joined.
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def single_token(self, text: str) -> int | None:
        ids = self.tokenize(text, special=True)
        return ids[0] if len(ids) == 1 else None


def _metadata(llama_cpp: Any, model: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    buf = ctypes.create_string_buffer(1 << 16)
    for i in range(int(llama_cpp.llama_model_meta_count(model))):
        if llama_cpp.llama_model_meta_key_by_index(model, i, buf, len(buf)) < 0:
            continue
        key = buf.value.decode("utf-8", errors="replace")
        n = llama_cpp.llama_model_meta_val_str_by_index(model, i, buf, len(buf))
        if n >= len(buf):  # long values (chat templates) need a bigger buffer
            big = ctypes.create_string_buffer(n + 1)
            llama_cpp.llama_model_meta_val_str_by_index(model, i, big, len(big))
            out[key] = big.value.decode("utf-8", errors="replace")
        elif n >= 0:
            out[key] = buf.value.decode("utf-8", errors="replace")
    return out


def _eos_tokens(llama_cpp: Any, raw_vocab: Any, vocab: Vocab) -> tuple[int, ...]:
    ids = [int(llama_cpp.llama_vocab_eos(raw_vocab)), int(llama_cpp.llama_vocab_eot(raw_vocab))]
    ids += [t for t in map(vocab.single_token, _END_TEXTS) if t is not None]
    return tuple(dict.fromkeys(t for t in ids if 0 <= t < vocab.n_vocab))


class LlamaBackend:
    """The ``Backend`` protocol on llama.cpp (see ``llama_tree`` for the engine)."""

    def __init__(self, *, lib: Any, model: Any, vocab: Vocab, info: ModelInfo, engine: TreeEngine) -> None:
        self._lib = lib
        self._model = model
        self._vocab = vocab
        self._engine = engine
        self.info = info

    @classmethod
    def load(
        cls,
        path: Path,
        runtime: RuntimeSettings,
        *,
        name: str,
        max_sequences: int | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> LlamaBackend:
        """Load ``path``; ``max_sequences`` caps live KV sequences (tests set it small);
        ``notify`` gets one-line notices (default: stderr)."""
        path = Path(path)
        check_gguf_file(path)
        lib = _llama_cpp()
        _Logging.configure(lib, runtime.verbose)
        lib.llama_backend_init()
        gpu_layers = runtime.n_gpu_layers
        if gpu_layers is None:
            gpu_layers = -1 if lib.llama_supports_gpu_offload() else 0
        mparams = lib.llama_model_default_params()
        mparams.n_gpu_layers = gpu_layers
        model = lib.llama_model_load_from_file(os.fsencode(path), mparams)
        if not model:
            raise ModelLoadError(
                f"llama.cpp cannot load {path}", hint="the file may be truncated or corrupt; download it again"
            )
        try:
            raw_vocab = lib.llama_model_get_vocab(model)
            vocab = Vocab(lib, raw_vocab)
            metadata = _metadata(lib, model)
            n_ctx_train = int(lib.llama_model_n_ctx_train(model)) or runtime.n_ctx
            n_cells = context_cells(
                runtime, n_ctx_train, kv_bytes_per_cell(lib, model, metadata, runtime.kv_cache), notify or _notice
            )
            info = ModelInfo(
                name=name,
                path=str(path),
                n_ctx=min(runtime.n_ctx, n_ctx_train),
                n_vocab=vocab.n_vocab,
                eos_tokens=_eos_tokens(lib, raw_vocab, vocab),
                chat_template=metadata.get("tokenizer.chat_template"),
                gpu_layers=gpu_layers,
                metadata=metadata,
                weights_bytes=int(lib.llama_model_size(model)),
            )
            from .llama_tree import TreeEngine

            engine = TreeEngine.create(
                lib,
                model,
                vocab,
                info,
                n_cells=n_cells,
                n_threads=runtime.threads,
                kv_q8=runtime.kv_cache is KVCacheType.Q8_0,
                max_sequences=max_sequences,
            )
        except BaseException:
            lib.llama_model_free(model)
            raise
        return cls(lib=lib, model=model, vocab=vocab, info=info, engine=engine)

    @property
    def stats(self) -> BackendStats:
        return self._engine.stats

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return self._vocab.tokenize(text, special=special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._vocab.detokenize(tokens)

    def root(self, prompt_tokens: Sequence[int]) -> Handle:
        return self._engine.root(prompt_tokens)

    def extend(self, requests: Sequence[Request], on_token: TokenCallback | None = None) -> list[Continuation]:
        return self._engine.extend(requests, on_token)

    def release(self, handle: Handle) -> None:
        self._engine.release(handle)

    @property
    def engine(self) -> TreeEngine:
        """The tree engine (benchmarks read its KV figures)."""
        return self._engine

    def close(self) -> None:
        if self._model is None:
            return
        self._engine.close()
        self._lib.llama_model_free(self._model)
        self._model = None

    def __enter__(self) -> LlamaBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
