"""Frozen settings objects. Precedence: defaults <- models.toml <- env <- flags.

Values are validated here, once, so the rest of the code can trust them; a
bad value raises ``UsageError`` naming the option.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from enum import Enum
from pathlib import Path

from .errors import UsageError
from .machine import usable_cpus

REFLECTION_PHRASE = "Wait! Maybe I made some mistakes! I need to rethink from scratch."
"""Marco-o1 v1's reflection text, verbatim (ALGORITHM.md section 2)."""


class Mode(str, Enum):
    COT = "cot"
    MCTS = "mcts"


class Action(str, Enum):
    """Granularity of one MCTS action (Marco-o1 v1 section 2.2)."""

    STEP = "step"  # until the step delimiter, </Thought>, </Output> or EOS
    MINI_64 = "mini-64"  # exactly 64 tokens (ends early only at EOS / </Output>)
    MINI_32 = "mini-32"

    @property
    def mini_tokens(self) -> int | None:
        return {Action.MINI_64: 64, Action.MINI_32: 32}.get(self)


class Pick(str, Enum):
    MOST_VISITED = "most-visited"  # follow most-visited children, finish greedily
    BEST_VALUE = "best-value"  # the completed rollout with the highest value
    VOTE = "vote"  # the best rollout of the answer with the most value mass (search/vote.py)


class ValueSpan(str, Enum):
    ROLLOUT = "rollout"  # mean confidence over every generated token of the path
    OUTPUT = "output"  # only over the tokens inside <Output>...</Output>


class KVCacheType(str, Enum):
    F16 = "f16"
    Q8_0 = "q8_0"


def _positive(name: str, value: float | int | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"--{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass(frozen=True)
class RuntimeSettings:
    """How llama.cpp runs the model."""

    n_ctx: int = 8192  # KV cells shared by the whole search tree
    n_threads: int | None = None  # None: MARCO_THREADS, else marco chooses while it runs
    n_gpu_layers: int | None = None  # None: all layers when offload is supported
    kv_cache: KVCacheType = KVCacheType.F16
    verbose: bool = False
    force_ctx: bool = False  # keep an n_ctx above the model's training context

    def __post_init__(self) -> None:
        _positive("ctx", self.n_ctx)
        if self.n_ctx < 256:
            raise UsageError(f"--ctx must be at least 256, got {self.n_ctx}")
        _positive("threads", self.n_threads)
        if self.n_gpu_layers is not None and self.n_gpu_layers < -1:
            raise UsageError(f"--n-gpu-layers must be -1 (all), 0 or more, got {self.n_gpu_layers}")

    @property
    def requested_threads(self) -> int | None:
        """``--threads``, else ``MARCO_THREADS``, else None: marco chooses."""
        if self.n_threads:
            return self.n_threads
        env = os.environ.get("MARCO_THREADS", "").strip()
        if not env:
            return None
        try:
            value = int(env)
        except ValueError:
            raise UsageError(f"MARCO_THREADS must be a whole number, got {env!r}") from None
        if value <= 0:
            raise UsageError(f"MARCO_THREADS must be > 0, got {value}")
        return value

    @property
    def threads(self) -> int | None:
        """The fixed thread count asked for, at most the CPUs this process may
        use (more threads than CPUs only queue up behind each other: 999
        measured 20x slower than 4); None: marco chooses while it runs
        (``backends/threads.py``: whichever count is fastest right now, since
        llama.cpp's threads stall each other when another program holds a core)."""
        asked = self.requested_threads
        return None if asked is None else min(asked, usable_cpus())

    def threads_notice(self) -> str | None:
        """One line for stderr when the asked-for count was capped."""
        asked, cpus = self.requested_threads, usable_cpus()
        if asked is None or asked <= cpus:
            return None
        source = "--threads" if self.n_threads else "MARCO_THREADS"
        return f"{source} {asked} is more than the {cpus} CPUs here; using {cpus}"


@dataclass(frozen=True)
class GenerationSettings:
    """Plain (CoT) generation."""

    temperature: float = 0.0
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int = 0
    system: str | None = None  # replaces the model's default system prompt
    loop_guard: bool = True  # end a looping generation early (backends/loops.py)

    def __post_init__(self) -> None:
        _positive("temperature", self.temperature, allow_zero=True)
        if self.temperature > 5:
            raise UsageError(f"--temperature must be between 0 and 5, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p must be in (0, 1], got {self.top_p}")
        _positive("max-tokens", self.max_tokens)
        _positive("seed", self.seed, allow_zero=True)


@dataclass(frozen=True)
class SearchSettings:
    """MCTS knobs (ALGORITHM.md section 2; the ones marked *ours* there)."""

    action: Action = Action.STEP
    simulations: int = 16
    children: int = 3
    max_depth: int = 8
    exploration: float = 1.41
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    max_tokens: int = 1024  # generated tokens per answer (path), rollouts included
    step_max_tokens: int = 256  # cap for one `step` action
    delimiter: str = "\n\n"
    reflection: bool = False  # v1: reflect once before </Thought> on each path
    reflect_below: float | None = None  # v2-style dynamic reflection threshold
    pick: Pick = Pick.MOST_VISITED
    value_span: ValueSpan = ValueSpan.ROLLOUT
    budget: float | None = None  # wall-clock seconds; None = no limit
    seed: int = 0
    leaves_per_iteration: int = 0  # >1 selects several leaves with virtual loss; 0: auto (search/batching.py)
    # Early stop: end once the leading answer holds this share of the finished
    # rollouts' value mass, after at least ``early_stop_min`` of them voted
    # (search/vote.py). None or 0 turns it off. Provisional defaults, to be
    # chosen by measurement.
    early_stop: float | None = 0.75
    early_stop_min: int = 3
    loop_guard: bool = True  # end looping continuations; a looped path is worth 0

    def __post_init__(self) -> None:
        for name in ("simulations", "children", "max_depth", "max_tokens", "step_max_tokens", "top_k"):
            _positive(name.replace("_", "-"), getattr(self, name))
        _positive("leaves", self.leaves_per_iteration, allow_zero=True)
        _positive("exploration", self.exploration, allow_zero=True)
        _positive("temperature", self.temperature, allow_zero=True)
        _positive("seed", self.seed, allow_zero=True)
        _positive("budget", self.budget)
        if not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.reflect_below is not None and not 0 <= self.reflect_below <= 1:
            raise UsageError(f"--reflect-below must be between 0 and 1, got {self.reflect_below}")
        if not self.delimiter:
            raise UsageError("the step delimiter must not be empty")
        if self.early_stop is not None and not 0 <= self.early_stop <= 1:
            raise UsageError(f"--early-stop must be between 0 (off) and 1, got {self.early_stop}")
        _positive("early-stop-min", self.early_stop_min)

    @property
    def early_stop_share(self) -> float | None:
        """The share that stops the search, or None when early stopping is off."""
        return self.early_stop or None

    def with_(self, **changes: object) -> "SearchSettings":
        return replace(self, **changes)


def field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def marco_home() -> Path:
    """Where marco keeps its files (models, history, config): ``MARCO_HOME``, else
    ``$XDG_DATA_HOME/marco`` or ``~/.local/share/marco``."""
    env = os.environ.get("MARCO_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "marco"


def config_dir() -> Path:
    """User configuration (a ``models.toml`` here overrides the shipped one)."""
    env = os.environ.get("MARCO_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "marco"


def models_dir() -> Path:
    env = os.environ.get("MARCO_MODELS_DIR")
    return Path(env).expanduser() if env else marco_home() / "models"
