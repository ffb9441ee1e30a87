"""Frozen settings objects. Precedence: defaults <- models.toml <- env <- flags.

Each field that a user can set is declared here, once, with ``setting(...)``
(see ``spec.py``): its flag, ``/set`` key and request field, help, default and
rules all come from that declaration. Values are validated when an object is
made, so the rest of the code can trust them; a bad value raises
``SettingError`` naming the setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import UsageError
from .machine import usable_cpus
from .spec import (
    CLI_ONLY,
    Group,
    Setting,
    Spec,
    Surface,
    above,
    at_least,
    at_most,
    check_fields,
    declared,
    escaped_text,
    in_unit_interval,
    not_empty,
    setting,
    show_escaped,
)

REFLECTION_PHRASE = "Wait! Maybe I made some mistakes! I need to rethink from scratch."
"""Marco-o1 v1's reflection text, verbatim (docs/algorithm.md section 2)."""


class Mode(str, Enum):
    COT = "cot"
    MCTS = "mcts"
    VOTE = "vote"  # sampled chains of thought, a confidence-weighted vote (reasoner.py)


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


def parse_leaves(text: str) -> int:
    """``auto|N``: 0 stands for auto in ``SearchSettings``."""
    if text.lower() == "auto":
        return 0
    try:
        leaves = int(text)
    except ValueError:
        leaves = 0
    if leaves <= 0:
        raise ValueError("must be auto or a whole number > 0")
    return leaves


def default_temperature(mode: Mode, *, samples: int = 1) -> float:
    """The one rule for the temperature nobody set: greedy (0) for a single
    chain of thought, which is then deterministic; 0.6 wherever answers are
    sampled to be compared: the search's children, or several CoT samples.
    0.6 is what the held-out MGSM table (BENCHMARKS.md, issue 12) measured
    for the search, sc and conf-vote alike; 0.8 sampled Python code and
    invented outputs on the Qwen2 proxy's pilot."""
    return 0.0 if mode is Mode.COT and samples == 1 else 0.6  # VOTE samples, as MCTS does


MODE = Setting(
    "mode",
    Mode,
    None,
    "cot: one chain of thought; mcts: Monte Carlo Tree Search over reasoning steps; vote: --samples chains "
    "of thought sampled together, the answer their confidence-weighted vote picks. ask searches by default: "
    "on held-out MGSM questions (English, Chinese) the search beat one chain of thought by 7-9 points for "
    "~6x its tokens (BENCHMARKS.md); chat and translate think once.",
    Group.GENERATION,
    surfaces=CLI_ONLY,
)
"""``--mode`` has no dataclass of its own; each command says its default.
``ask`` says ``mcts``: on questions 51-150 of MGSM-En and MGSM-Zh, with a
Qwen2 model as Marco-o1's stand-in, the default search met issue 12's bar
(at least a chain of thought + 5 points, no worse than self-consistency at
equal tokens; BENCHMARKS.md). ``chat`` and ``translate`` say ``cot``: a
conversation waits on every turn, and translation was not measured."""


@dataclass(frozen=True)
class ModelSettings:
    """Which model, from which registry, run where."""

    model: str | None = setting(
        "model",
        None,
        "Model name, alias, NAME:QUANT or path to a .gguf file.",
        Group.MODEL,
        kind=str,
        optional=True,
        surfaces=CLI_ONLY,
        short="-m",
        metavar="NAME[:QUANT]|FILE",
        envvar="MARCO_MODEL",
        default_text="the registry's default",
    )
    models: str | None = setting(
        "models",
        None,
        "Model registry file to use instead of the shipped models.toml.",
        Group.MODEL,
        kind=str,
        optional=True,
        surfaces=CLI_ONLY,
        metavar="FILE",
        envvar="MARCO_MODELS",
        default_text="models.toml",
    )
    backend: str | None = setting(
        "backend",
        None,
        "Run the model on an OpenAI-compatible server at this URL (vLLM, llama-server); its API key from MARCO_API_KEY.",
        Group.MODEL,
        kind=str,
        optional=True,
        surfaces=CLI_ONLY,
        metavar="URL",
        envvar="MARCO_BACKEND",
        default_text="local llama.cpp",
    )

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class RuntimeSettings:
    """How llama.cpp runs the model."""

    n_ctx: int = setting(  # KV cells shared by the whole search tree
        "ctx",
        8192,
        "KV-cache size in tokens (shared by the whole search tree).",
        Group.RUNTIME,
        surfaces=CLI_ONLY,
        metavar="TOKENS",
        rules=(above(0), at_least(256, "must be at least 256")),
    )
    n_threads: int | None = setting(  # None: MARCO_THREADS, else marco chooses while it runs
        "threads",
        None,
        "CPU threads for llama.cpp, at most the CPUs here.",
        Group.RUNTIME,
        kind=int,
        optional=True,
        surfaces=CLI_ONLY,
        metavar="N",
        rules=(above(0),),
        default_text="MARCO_THREADS, else chosen while it runs: the count that decodes fastest right now, from all "
        "cores down to one, because llama.cpp's threads stall each other when another program holds a core",
    )
    n_gpu_layers: int | None = setting(  # None: all layers when offload is supported
        "n-gpu-layers",
        None,
        "Layers to offload to the GPU; -1 = all.",
        Group.RUNTIME,
        kind=int,
        optional=True,
        surfaces=CLI_ONLY,
        metavar="N",
        rules=(at_least(-1, "must be -1 (all), 0 or more"),),
        default_text="all when this llama.cpp build can offload, else 0",
    )
    kv_cache: KVCacheType = setting(
        "kv-cache",
        KVCacheType.F16,
        "KV-cache type (q8_0 halves its memory).",
        Group.RUNTIME,
        surfaces=CLI_ONLY,
    )
    verbose: bool = setting(
        "verbose",
        False,
        "Show llama.cpp's own log on stderr.",
        Group.RUNTIME,
        surfaces=CLI_ONLY,
        negatable=False,
    )
    force_ctx: bool = setting(  # keep an n_ctx above the model's training context
        "force-ctx",
        False,
        "Keep a --ctx above the model's training context (costs memory; the model was not trained for it).",
        Group.RUNTIME,
        surfaces=CLI_ONLY,
        negatable=False,
    )

    def __post_init__(self) -> None:
        check_fields(self)

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


# Shared by chain of thought and search: one setting, a field in both classes.
# A server request sets these by their OpenAI names, at the top level.
CLI_CHAT = frozenset({Surface.CLI, Surface.CHAT})
TEMPERATURE = Setting(
    "temperature",
    float,
    None,
    "Sampling temperature; 0 = greedy.",
    Group.GENERATION,
    short="-t",
    surfaces=CLI_CHAT,
    metavar="T",
    rules=(at_least(0), at_most(5, "must be between 0 and 5")),
    default_text=f"{default_temperature(Mode.COT):g} for cot, {default_temperature(Mode.MCTS):g} for mcts",
    openai="temperature",
)
TOP_P = Setting(
    "top-p",
    float,
    0.95,
    "Nucleus sampling: sample from the smallest set of tokens this likely.",
    Group.GENERATION,
    surfaces=CLI_CHAT,
    metavar="P",
    rules=(in_unit_interval,),
    openai="top_p",
)
MAX_TOKENS = Setting(
    "max-tokens",
    int,
    1024,
    "Most tokens generated per answer (thought included; a search's rollouts too).",
    Group.GENERATION,
    surfaces=CLI_CHAT,
    metavar="N",
    rules=(above(0),),
    openai="max_tokens",
)
LOOP_GUARD = Setting(  # end a looping generation early (backends/loops.py); a looped path is worth 0
    "loop-guard",
    bool,
    True,
    "End a generation that repeats itself (a looped path is worth 0 and never wins).",
    Group.GENERATION,
    surfaces=CLI_CHAT,
)
SEED = Setting(
    "seed",
    int,
    0,
    "Random seed: same seed, same answer.",
    Group.GENERATION,
    surfaces=CLI_CHAT,
    metavar="N",
    rules=(at_least(0),),
    openai="seed",
)


@dataclass(frozen=True)
class GenerationSettings:
    """Plain (CoT) generation."""

    temperature: float = declared(TEMPERATURE, default_temperature(Mode.COT))
    top_p: float = declared(TOP_P, TOP_P.default)
    max_tokens: int = declared(MAX_TOKENS, MAX_TOKENS.default)
    seed: int = declared(SEED, SEED.default)
    loop_guard: bool = declared(LOOP_GUARD, LOOP_GUARD.default)
    system: str | None = setting(  # replaces the model's default system prompt
        "system",
        None,
        "System prompt (replaces the model's default; 'default' restores it).",
        Group.GENERATION,
        kind=str,
        optional=True,
        surfaces=CLI_CHAT,
        metavar="TEXT",
        parser=lambda raw: None if raw.lower() == "default" else raw,
        default_text="the model's",
    )

    def __post_init__(self) -> None:
        check_fields(self)


_SEARCH = Group.SEARCH


@dataclass(frozen=True)
class SearchSettings:
    """MCTS knobs (docs/algorithm.md section 2; the ones marked *ours* there)."""

    action: Action = setting(
        "action",
        Action.STEP,
        "MCTS action: a reasoning step, or a mini-step of 64/32 tokens.",
        _SEARCH,
    )
    # 4 x 2 with --pick vote: the search the held-out MGSM table measured
    # (BENCHMARKS.md, issue 12): +6.7 points over greedy CoT for ~6x its
    # tokens, where 16 x 3 cost ~4x more again and was never shown better.
    simulations: int = setting("simulations", 4, "MCTS iterations.", _SEARCH, metavar="N", rules=(above(0),))
    children: int = setting("children", 2, "Children sampled per expansion.", _SEARCH, metavar="K", rules=(above(0),))
    max_depth: int = setting(
        "max-depth", 8, "Deepest tree level that is expanded.", _SEARCH, metavar="D", rules=(above(0),)
    )
    exploration: float = setting(
        "exploration",
        1.41,
        "UCT exploration constant c in Q/N + c*sqrt(ln N_parent / N).",
        _SEARCH,
        metavar="C",
        rules=(at_least(0),),
    )
    temperature: float = declared(TEMPERATURE, default_temperature(Mode.MCTS))
    top_p: float = declared(TOP_P, TOP_P.default)
    top_k: int = setting(
        "top-k", 40, "Sample each search step from the K likeliest tokens.", _SEARCH, metavar="K", rules=(above(0),)
    )
    max_tokens: int = declared(MAX_TOKENS, MAX_TOKENS.default)  # per answer (path), rollouts included
    step_max_tokens: int = setting(
        "step-max-tokens",
        256,
        "Most tokens in one `step` action.",
        _SEARCH,
        metavar="N",
        rules=(above(0),),
    )
    delimiter: str = setting(
        "delimiter",
        "\n\n",
        "What ends a reasoning step (\\n is a newline).",
        _SEARCH,
        metavar="TEXT",
        rules=(not_empty,),
        parser=escaped_text,
        shower=show_escaped,
    )
    reflection: bool = setting(  # v1: reflect once before </Thought> on each path
        "reflection",
        False,
        'Insert Marco-o1\'s reflection phrase ("Wait! Maybe I made some mistakes! ...") '
        "before </Thought>, once per path.",
        _SEARCH,
    )
    reflect_below: float | None = setting(  # v2-style dynamic reflection threshold
        "reflect-below",
        None,
        "Offer a reflection step under nodes whose step confidence is below this.",
        _SEARCH,
        kind=float,
        optional=True,
        metavar="X",
        rules=(at_least(0, "must be between 0 and 1"), at_most(1, "must be between 0 and 1")),
    )
    pick: Pick = setting(  # vote: no greedy finish to pay for, and the pick the held-out table measured
        "pick",
        Pick.VOTE,
        "Final answer: vote (the best rollout of the answer most rollout value agrees on), follow the "
        "most-visited children and finish greedily, or take the best-valued finished rollout.",
        _SEARCH,
    )
    value_span: ValueSpan = setting(
        "value-span",
        ValueSpan.ROLLOUT,
        "Tokens a rollout's value (mean token confidence) averages over: the whole path, or the <Output> only.",
        _SEARCH,
    )
    budget: float | None = setting(
        "budget",
        None,
        "Stop searching after this many seconds and answer with the best path so far.",
        _SEARCH,
        kind=float,
        optional=True,
        metavar="SECONDS",
        rules=(above(0),),
        default_text="no limit",
    )
    seed: int = declared(SEED, SEED.default)
    leaves_per_iteration: int = setting(  # >1 selects several leaves with virtual loss; 0: auto (search/batching.py)
        "leaves",
        0,
        "Leaves expanded together per iteration (virtual loss): bigger llama.cpp batches, "
        "a different but still seeded tree. auto: 4 where batches pay (weights of 256 MiB or more, or a GPU), else 1.",
        _SEARCH,
        metavar="auto|N",
        rules=(at_least(0),),
        parser=parse_leaves,
        shower=lambda n: str(n) if n else "auto",
    )

    # Early stop: end once the leading answer holds this share of the finished
    # rollouts' value mass, after at least ``early_stop_min`` of them voted
    # (search/vote.py). None or 0 turns it off. Provisional defaults, to be
    # chosen by measurement.
    early_stop: float | None = setting(
        "early-stop",
        0.75,
        "Stop searching once one answer holds this share of the finished rollouts' value; 0 = off.",
        _SEARCH,
        kind=float,
        optional=True,
        metavar="SHARE",
        rules=(at_least(0, "must be between 0 (off) and 1"), at_most(1, "must be between 0 (off) and 1")),
    )
    early_stop_min: int = setting(
        "early-stop-min",
        3,
        "Finished rollouts with an answer needed before --early-stop may end the search.",
        _SEARCH,
        metavar="N",
        rules=(above(0),),
    )
    loop_guard: bool = declared(LOOP_GUARD, LOOP_GUARD.default)
    # --mode vote (reasoner.py) samples its chains with the settings above that
    # a chain of thought has (temperature, top-p, top-k, max-tokens per chain,
    # seed, loop guard) and weighs them by eq. 2 over --value-span. 6: the k
    # of the held-out MGSM table, where this vote (marco eval's conf-vote) was
    # the most accurate method at equal tokens (BENCHMARKS.md, issue 12).
    samples: int = setting(
        "samples",
        6,
        "Chains of thought --mode vote samples (in one batch) and votes over.",
        Group.VOTE,
        metavar="K",
        rules=(above(0), at_most(64, "must be between 1 and 64")),
    )

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def early_stop_share(self) -> float | None:
        """The share that stops the search, or None when early stopping is off."""
        return self.early_stop or None

    def with_(self, **changes: Any) -> SearchSettings:  # checked by __post_init__, not statically
        return replace(self, **changes)


SPEC = Spec([MODE], [ModelSettings, RuntimeSettings, GenerationSettings, SearchSettings])
"""Every setting, in help order (groups in ``Group`` order, fields in class order)."""


def marco_home() -> Path:
    """Where marco keeps its files (models, history, config): ``MARCO_HOME``, else
    ``$XDG_DATA_HOME/marco`` or ``~/.local/share/marco``."""
    return _marco_dir("XDG_DATA_HOME", Path(".local", "share"))


def config_dir() -> Path:
    """User configuration (a ``models.toml`` here overrides the shipped one):
    ``MARCO_HOME``, else ``$XDG_CONFIG_HOME/marco`` or ``~/.config/marco``."""
    return _marco_dir("XDG_CONFIG_HOME", Path(".config"))


def _marco_dir(xdg_var: str, under_home: Path) -> Path:
    env = os.environ.get("MARCO_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get(xdg_var)
    base = Path(xdg).expanduser() if xdg else Path.home() / under_home
    return base / "marco"


def models_dir() -> Path:
    env = os.environ.get("MARCO_MODELS_DIR")
    return Path(env).expanduser() if env else marco_home() / "models"
