"""The model registry (``models.toml``): read, validate strictly, resolve names.

Which file is used: ``--models FILE`` > ``MARCO_MODELS`` > ``models.toml`` in
the config dir > the one shipped with marco. Every error names the file, the
table and the key, and unknown keys are rejected so typos cannot pass.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# The remote backend owns the shape of its target; the registry only fills it in.
from ..backends.remote_target import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, RemoteTarget
from ..core.errors import ConfigError, UnknownModelError, UsageError
from ..core.settings import config_dir, models_dir
from ..core.untrusted import load_config_toml, read_text
from ..formats.reasoning import Reasoning, ReasoningFormat, reasoning_format

SHIPPED_REGISTRY = Path(__file__).parent.parent / "models.toml"

_TOP_KEYS = {"default", "fallback", "models"}
_MODEL_KEYS = {
    "description",
    "aliases",
    "repo",
    "default_quant",
    "quants",
    "package",
    "file",
    "path",
    "quant",
    "size",
    "reasoning",
    "thought_format",
    "stop",
    "system_prompt",
    "chat_template",
    "base_url",
    "model",
    "api_key_env",
    "n_ctx",
    "concurrency",
    "timeout",
    "cache_prompt",
}
_REMOTE_ONLY = ("model", "api_key_env", "n_ctx", "concurrency", "timeout", "cache_prompt")
_QUANT_KEYS = {"file", "size", "bytes", "sha256"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class QuantFile:
    quant: str
    file: str
    size: str | None = None  # human label shown by `marco models`
    bytes: int | None = None  # exact size, checked after a download when given
    sha256: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    repo: str | None = None  # Hugging Face Hub repo id
    default_quant: str | None = None
    quants: dict[str, QuantFile] = field(default_factory=dict)
    package: str | None = None  # Python package that ships the file
    file: str | None = None
    path: str | None = None
    quant: str | None = None
    size: str | None = None
    reasoning: Reasoning = Reasoning.NONE  # how it lays out its reasoning (formats/reasoning.py)
    stop: tuple[str, ...] = ()
    system_prompt: str | None = None
    chat_template: str | None = None
    base_url: str | None = None  # an OpenAI-compatible server runs this model
    model: str | None = None  # the server's model id
    api_key_env: str | None = None
    n_ctx: int | None = None
    concurrency: int | None = None
    timeout: float | None = None
    cache_prompt: bool | None = None

    @property
    def format(self) -> ReasoningFormat:
        return reasoning_format(self.reasoning)

    @property
    def thought_format(self) -> bool:
        """The registry's older name: whether the model speaks <Thought>/<Output>."""
        return self.reasoning is Reasoning.MARCO

    @property
    def downloadable(self) -> bool:
        return self.repo is not None and bool(self.quants)

    @property
    def remote(self) -> RemoteTarget | None:
        if not self.base_url:
            return None
        return RemoteTarget(
            self.base_url,
            self.model,
            self.api_key_env,
            self.n_ctx,
            self.concurrency or DEFAULT_CONCURRENCY,
            self.timeout or DEFAULT_TIMEOUT,
            bool(self.cache_prompt),
        )


@dataclass(frozen=True)
class Registry:
    source: Path
    default: str
    fallback: str | None
    models: dict[str, ModelEntry]

    def names(self) -> list[str]:
        return list(self.models)

    def lookup(self, name: str) -> ModelEntry:
        key = name.strip().lower()
        if key in self.models:
            return self.models[key]
        for entry in self.models.values():
            if key in entry.aliases:
                return entry
        known = ", ".join(sorted(self.models))
        raise UnknownModelError(f"unknown model '{name}'; known models: {known}")


@dataclass(frozen=True)
class ResolvedModel:
    """A model spec turned into a file: what to load and what it is."""

    name: str
    quant: str | None
    path: Path
    entry: ModelEntry
    quant_file: QuantFile | None = None
    remote: RemoteTarget | None = None  # set: runs on that server, ``path`` means nothing
    # A bare path ``resolve`` knew nothing more about; models/file_identity.py
    # finds its formats from what the file says it is.
    by_path: bool = False

    @property
    def label(self) -> str:
        return f"{self.name}:{self.quant}" if self.quant else self.name

    @property
    def on_disk(self) -> bool:
        return self.remote is None and self.path.is_file()

    @property
    def available(self) -> bool:
        """Whether it can answer without a download: on disk, or on a server."""
        return self.remote is not None or self.on_disk


def _err(path: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {message}")


def _check_keys(path: Path, where: str, table: dict[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise _err(path, where, f"unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")


def _typed(
    path: Path, where: str, table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None
) -> Any:
    if key not in table:
        return default
    value = table[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _err(path, f"{where}.{key}", f"expected {names}, got {type(value).__name__} {value!r}")
    return value


def _strings(path: Path, where: str, table: dict[str, Any], key: str) -> tuple[str, ...]:
    values = _typed(path, where, table, key, list, [])
    for value in values:
        if not isinstance(value, str) or not value:
            raise _err(path, f"{where}.{key}", f"expected a list of non-empty strings, got {value!r}")
    return tuple(values)


def _inside_name(path: Path, where: str, value: str | None) -> str | None:
    """A ``file`` key: a path relative to the model's own folder that cannot leave
    it. ``marco pull`` writes there and ``marco rm`` deletes there, so an absolute
    path or a ``..`` would let a registry entry point them at any file."""
    if value is None:
        return None
    parts = value.split("/")
    bad = (
        value.startswith(("/", "~"))
        or "\\" in value
        or "\0" in value
        or ":" in parts[0]
        or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
    )
    if bad:
        raise _err(
            path,
            where,
            f"must be a file name inside the model's folder (no absolute path, '..', '~' or hidden names), got {value!r}",
        )
    return value


def _parse_quant(path: Path, where: str, quant: str, table: object) -> QuantFile:
    if not isinstance(table, dict):
        raise _err(path, where, "expected a table")
    _check_keys(path, where, table, _QUANT_KEYS)
    file = _typed(path, where, table, "file", str)
    if not file:
        raise _err(path, where, "missing key 'file'")
    _inside_name(path, f"{where}.file", file)
    size_bytes = _typed(path, where, table, "bytes", int)
    if size_bytes is not None and size_bytes <= 0:
        raise _err(path, f"{where}.bytes", f"must be > 0, got {size_bytes}")
    sha = _typed(path, where, table, "sha256", str)
    if sha is not None and not _SHA_RE.match(sha.lower()):
        raise _err(path, f"{where}.sha256", "must be 64 hex digits")
    return QuantFile(quant, file, _typed(path, where, table, "size", str), size_bytes, sha and sha.lower())


def _parse_model(path: Path, name: str, table: object) -> ModelEntry:
    where = f"[models.{name}]"
    if not isinstance(table, dict):
        raise _err(path, where, "expected a table")
    if not _NAME_RE.match(name):
        raise _err(path, where, "model names use lower-case letters, digits, '.', '_' and '-'")
    _check_keys(path, where, table, _MODEL_KEYS)
    quants_table = _typed(path, where, table, "quants", dict, {})
    quants = {
        q.upper(): _parse_quant(path, f"[models.{name}.quants.{q}]", q.upper(), t) for q, t in quants_table.items()
    }
    entry = ModelEntry(
        name=name,
        description=_typed(path, where, table, "description", str, ""),
        aliases=tuple(a.lower() for a in _strings(path, where, table, "aliases")),
        repo=_typed(path, where, table, "repo", str),
        default_quant=(_typed(path, where, table, "default_quant", str) or "").upper() or None,
        quants=quants,
        package=_typed(path, where, table, "package", str),
        file=_inside_name(path, f"{where}.file", _typed(path, where, table, "file", str)),
        path=_typed(path, where, table, "path", str),
        quant=_typed(path, where, table, "quant", str),
        size=_typed(path, where, table, "size", str),
        reasoning=_reasoning(path, where, table),
        stop=_strings(path, where, table, "stop"),
        system_prompt=_typed(path, where, table, "system_prompt", str),
        chat_template=_typed(path, where, table, "chat_template", str),
        **_remote_keys(path, where, table),
    )
    sources = [bool(entry.repo), bool(entry.package), bool(entry.path), bool(entry.base_url)]
    if sum(sources) != 1:
        raise _err(
            path,
            where,
            "give exactly one of 'repo' (with quants), 'package' (with file), 'path' or 'base_url' (a server)",
        )
    if not entry.base_url:
        for key in _REMOTE_ONLY:
            if key in table:
                raise _err(path, f"{where}.{key}", "only a remote model (one with 'base_url') takes this key")
    if entry.repo and not quants:
        raise _err(path, where, "'repo' needs at least one [quants.NAME] table with a 'file'")
    if entry.repo and entry.default_quant and entry.default_quant not in quants:
        raise _err(
            path, f"{where}.default_quant", f"'{entry.default_quant}' is not among its quants ({', '.join(quants)})"
        )
    if entry.package and not entry.file:
        raise _err(path, where, "'package' needs 'file' (the file's name inside the package)")
    return entry


def _reasoning(path: Path, where: str, table: dict[str, Any]) -> Reasoning:
    """``reasoning = "marco" | "think" | "none"``; the older boolean
    ``thought_format`` still reads (true: marco, false: none)."""
    legacy = _typed(path, where, table, "thought_format", bool)
    value = _typed(path, where, table, "reasoning", str)
    if value is None:
        return Reasoning.MARCO if legacy else Reasoning.NONE
    if legacy is not None:
        raise _err(path, where, "give 'reasoning' or the older 'thought_format', not both")
    try:
        return Reasoning(value.strip().lower())
    except ValueError:
        choices = ", ".join(f"'{r.value}'" for r in Reasoning)
        raise _err(path, f"{where}.reasoning", f"expected one of {choices}, got {value!r}") from None


def normalize_base_url(url: str) -> str:
    """``http://host:8000``, ``http://host:8000/`` and ``http://host:8000/v1`` (what
    OpenAI clients call the base URL) all name the same server. Raises ValueError."""
    url = url.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8080")
    if any(c.isspace() for c in url):
        raise ValueError("must not contain spaces")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _remote_keys(path: Path, where: str, table: dict[str, Any]) -> dict[str, Any]:
    base_url = _typed(path, where, table, "base_url", str)
    if base_url is not None:
        try:
            base_url = normalize_base_url(base_url)
        except ValueError as exc:
            raise _err(path, f"{where}.base_url", f"{exc}, got {table['base_url']!r}") from None
    model = _typed(path, where, table, "model", str)
    if model is not None and not model.strip():
        raise _err(path, f"{where}.model", "must not be empty")
    key_env = _typed(path, where, table, "api_key_env", str)
    if key_env is not None and not _ENV_RE.match(key_env):
        raise _err(path, f"{where}.api_key_env", f"expected the name of an environment variable, got {key_env!r}")
    n_ctx = _typed(path, where, table, "n_ctx", int)
    if n_ctx is not None and n_ctx < 256:
        raise _err(path, f"{where}.n_ctx", f"must be at least 256, got {n_ctx}")
    concurrency = _typed(path, where, table, "concurrency", int)
    if concurrency is not None and not 1 <= concurrency <= 256:
        raise _err(path, f"{where}.concurrency", f"must be between 1 and 256, got {concurrency}")
    timeout = _typed(path, where, table, "timeout", (int, float))
    if timeout is not None and timeout <= 0:
        raise _err(path, f"{where}.timeout", f"must be > 0 seconds, got {timeout}")
    cache_prompt = _typed(path, where, table, "cache_prompt", bool)
    return {
        "base_url": base_url,
        "model": model,
        "api_key_env": key_env,
        "n_ctx": n_ctx,
        "concurrency": concurrency,
        "timeout": None if timeout is None else float(timeout),
        "cache_prompt": cache_prompt,
    }


def parse_registry(text: str, source: Path) -> Registry:
    data = load_config_toml(text, source)
    _check_keys(source, "top level", data, _TOP_KEYS)
    models_table = _typed(source, "top level", data, "models", dict, {})
    if not models_table:
        raise _err(source, "[models]", "no models defined")
    models = {name: _parse_model(source, name, table) for name, table in models_table.items()}
    seen: dict[str, str] = {}
    for entry in models.values():
        for alias in entry.aliases:
            if alias in models or alias in seen:
                raise _err(source, f"[models.{entry.name}].aliases", f"alias '{alias}' is already used")
            seen[alias] = entry.name
    registry = Registry(source, "", None, models)
    default = _typed(source, "top level", data, "default", str, next(iter(models)))
    fallback = _typed(source, "top level", data, "fallback", str)
    for key, value in (("default", default), ("fallback", fallback)):
        if value is not None:
            try:
                registry.lookup(value)
            except UnknownModelError:
                raise _err(source, f"top level.{key}", f"'{value}' is not a model in this file") from None
    return Registry(source, registry.lookup(default).name, fallback and registry.lookup(fallback).name, models)


def registry_path(override: str | os.PathLike[str] | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    env = os.environ.get("MARCO_MODELS")
    if env:
        return Path(env).expanduser()
    user = config_dir() / "models.toml"
    return user if user.is_file() else SHIPPED_REGISTRY


def load_registry(override: str | os.PathLike[str] | None = None) -> Registry:
    path = registry_path(override)
    return parse_registry(read_text(path, "model registry", ConfigError), path)


def package_file(package: str, file: str) -> Path:
    """A file shipped inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return Path(f"<package {package} is not installed>") / file
    return Path(next(iter(spec.submodule_search_locations))) / file


def download_path(entry: ModelEntry, quant: QuantFile) -> Path:
    """Where ``marco pull`` puts (and marco looks for) a hub model's file."""
    return models_dir() / entry.name / quant.file


def _resolve_quant(entry: ModelEntry, quant: str | None) -> QuantFile:
    key = (quant or entry.default_quant or next(iter(entry.quants))).upper()
    if key not in entry.quants:
        raise UsageError(f"model '{entry.name}' has no quant '{quant}'; available: {', '.join(entry.quants)}")
    return entry.quants[key]


def resolve_entry(entry: ModelEntry, quant: str | None = None) -> ResolvedModel:
    if entry.base_url:
        if quant:
            raise UsageError(f"model '{entry.name}' runs on a server ({entry.base_url}); it has no quant '{quant}'")
        return ResolvedModel(entry.name, None, Path("remote") / entry.name, entry, remote=entry.remote)
    if entry.repo:
        qf = _resolve_quant(entry, quant)
        return ResolvedModel(entry.name, qf.quant, download_path(entry, qf), entry, qf)
    if quant and entry.quant and quant.upper() != entry.quant.upper():
        raise UsageError(f"model '{entry.name}' comes only as {entry.quant}, not '{quant}'")
    if entry.package:
        return ResolvedModel(entry.name, entry.quant, package_file(entry.package, entry.file or ""), entry)
    return ResolvedModel(entry.name, entry.quant, Path(entry.path or "").expanduser(), entry)


def backend_target(base_url: str) -> RemoteTarget:
    """``--backend URL`` alone: that server, its first model, default limits."""
    try:
        return RemoteTarget(normalize_base_url(base_url))
    except ValueError as exc:
        raise UsageError(f"--backend {exc}, got {base_url!r}") from None


def with_backend(model: ResolvedModel, base_url: str) -> ResolvedModel:
    """``--backend URL``: run ``model`` (its prompt format, stops, system prompt)
    on that server instead. The server's model id is the entry's ``model`` when
    it is a remote entry, else the first model the server lists."""
    url = backend_target(base_url).base_url
    old = model.remote
    target = RemoteTarget(
        url,
        old.model if old else None,
        old.api_key_env if old else None,
        old.n_ctx if old else None,
        old.concurrency if old else DEFAULT_CONCURRENCY,
        old.timeout if old else DEFAULT_TIMEOUT,
        old.cache_prompt if old else False,
    )
    return replace(model, remote=target, path=Path("remote") / model.name)


def _looks_like_path(spec: str) -> bool:
    return spec.lower().endswith(".gguf") or os.sep in spec or spec.startswith(".")


def resolve(registry: Registry, spec: str) -> ResolvedModel:
    """``name``, ``alias``, ``name:quant`` or a path to any ``.gguf`` file."""
    spec = spec.strip()
    if not spec:
        raise UsageError("the model name is empty")
    if _looks_like_path(spec) and spec.lower() not in registry.models:
        path = Path(spec).expanduser()
        entry = ModelEntry(name=path.stem, path=str(path), description="local file")
        return ResolvedModel(path.name, None, path, entry, by_path=True)
    name, _, quant = spec.partition(":")
    return resolve_entry(registry.lookup(name), quant or None)
