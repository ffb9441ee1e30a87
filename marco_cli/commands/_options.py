"""Option types shared by several commands (ask, chat, translate, eval), so
each flag is spelled and documented once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..core.errors import UsageError
from ..core.settings import Action, KVCacheType, Mode, Pick, RuntimeSettings, SearchSettings, ValueSpan
from ..ui.console import notice

_RUNTIME = "Model runtime"
_SEARCH = "MCTS search"
_VIEW = "Display"

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", envvar="MARCO_MODEL", help="Model name, alias, NAME:QUANT or path to a .gguf file.", show_default=False)]
BackendOpt = Annotated[Optional[str], typer.Option("--backend", envvar="MARCO_BACKEND", help="Run the model on an OpenAI-compatible server at this URL (vLLM, llama-server); its API key from MARCO_API_KEY.", show_default=False, rich_help_panel=_RUNTIME)]
ModelsFileOpt = Annotated[Optional[str], typer.Option("--models", envvar="MARCO_MODELS", help="Model registry file to use instead of the shipped models.toml.", show_default=False)]
CtxOpt = Annotated[int, typer.Option("--ctx", help="KV-cache size in tokens (shared by the whole search tree).", rich_help_panel=_RUNTIME)]
ForceCtxOpt = Annotated[bool, typer.Option("--force-ctx", help="Keep a --ctx above the model's training context (costs memory; the model was not trained for it).", rich_help_panel=_RUNTIME)]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="CPU threads for llama.cpp, at most the CPUs here [default: MARCO_THREADS, else chosen while it runs: the count that decodes fastest right now, from all cores down to one, because llama.cpp's threads stall each other when another program holds a core].", show_default=False, rich_help_panel=_RUNTIME)]
GpuLayersOpt = Annotated[Optional[int], typer.Option("--n-gpu-layers", help="Layers to offload to the GPU; -1 = all [default: all when this llama.cpp build can offload, else 0].", show_default=False, rich_help_panel=_RUNTIME)]
KVCacheOpt = Annotated[KVCacheType, typer.Option("--kv-cache", help="KV-cache type (q8_0 halves its memory).", rich_help_panel=_RUNTIME)]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Show llama.cpp's own log on stderr.", rich_help_panel=_RUNTIME)]

ModeOpt = Annotated[Mode, typer.Option("--mode", help="cot: one chain of thought; mcts: Monte Carlo Tree Search over reasoning steps.")]
ActionOpt = Annotated[Action, typer.Option("--action", help="MCTS action: a reasoning step, or a mini-step of 64/32 tokens.", rich_help_panel=_SEARCH)]
SimulationsOpt = Annotated[int, typer.Option("--simulations", help="MCTS iterations.", rich_help_panel=_SEARCH)]
ChildrenOpt = Annotated[int, typer.Option("--children", help="Children sampled per expansion.", rich_help_panel=_SEARCH)]
MaxDepthOpt = Annotated[int, typer.Option("--max-depth", help="Deepest tree level that is expanded.", rich_help_panel=_SEARCH)]
ExplorationOpt = Annotated[float, typer.Option("--exploration", help="UCT exploration constant c.", rich_help_panel=_SEARCH)]
ReflectionOpt = Annotated[bool, typer.Option("--reflection/--no-reflection", help="Insert Marco-o1's reflection phrase before </Thought>, once per path.", rich_help_panel=_SEARCH)]
ReflectBelowOpt = Annotated[Optional[float], typer.Option("--reflect-below", help="Offer a reflection step under nodes whose step confidence is below this.", show_default=False, rich_help_panel=_SEARCH)]
PickOpt = Annotated[Pick, typer.Option("--pick", help="Final answer: most-visited path, best-value rollout, or vote (the answer most rollout value agrees on).", rich_help_panel=_SEARCH)]
EarlyStopOpt = Annotated[float, typer.Option("--early-stop", help="Stop searching once one answer holds this share of the finished rollouts' value; 0 = off.", metavar="SHARE", rich_help_panel=_SEARCH)]
EarlyStopMinOpt = Annotated[int, typer.Option("--early-stop-min", help="Finished rollouts with an answer needed before --early-stop may end the search.", metavar="N", rich_help_panel=_SEARCH)]
LoopGuardOpt = Annotated[bool, typer.Option("--loop-guard/--no-loop-guard", help="End a generation that repeats itself (a looped path is worth 0 and never wins).")]
ValueSpanOpt = Annotated[ValueSpan, typer.Option("--value-span", help="Tokens a rollout's value averages over.", rich_help_panel=_SEARCH)]
LeavesOpt = Annotated[str, typer.Option("--leaves", metavar="auto|N", help="Leaves expanded together per iteration (virtual loss): bigger llama.cpp batches, a different but still seeded tree. auto: 4 where batches pay (weights of 256 MiB or more, or a GPU), else 1.", rich_help_panel=_SEARCH)]
BudgetOpt = Annotated[Optional[float], typer.Option("--budget", help="Stop searching after this many seconds and answer with the best path so far.", show_default=False, rich_help_panel=_SEARCH)]

NoLiveOpt = Annotated[bool, typer.Option("--no-live", help="Don't draw the search tree live on stderr (it is drawn only on a terminal anyway).", rich_help_panel=_VIEW)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Leave no tree or summary on stderr after the search.", rich_help_panel=_VIEW)]
ConfidenceOpt = Annotated[bool, typer.Option("--confidence", help="Print the answer with each token coloured by its confidence (red unsure, green sure).", rich_help_panel=_VIEW)]
SaveTreeOpt = Annotated[Optional[Path], typer.Option("--save-tree", help="Write the whole search to this JSON file (for `marco replay`; schema in docs/tree-schema.md).", show_default=False, metavar="FILE", rich_help_panel=_VIEW)]


def parse_leaves(value: str) -> int:
    """``--leaves auto|N``: 0 stands for auto in ``SearchSettings``."""
    text = value.strip().lower()
    if text == "auto":
        return 0
    try:
        leaves = int(text)
    except ValueError:
        leaves = 0
    if leaves <= 0:
        raise UsageError(f"--leaves must be auto or a whole number > 0, got {value!r}")
    return leaves


def runtime_settings(ctx: int, threads: int | None, gpu_layers: int | None, kv_cache: KVCacheType, verbose: bool,
                     force_ctx: bool = False) -> RuntimeSettings:
    settings = RuntimeSettings(n_ctx=ctx, n_threads=threads, n_gpu_layers=gpu_layers, kv_cache=kv_cache, verbose=verbose,
                               force_ctx=force_ctx)
    capped = settings.threads_notice()
    if capped:
        notice(capped)
    return settings


DEFAULT_RUNTIME = RuntimeSettings()
DEFAULT_SEARCH = SearchSettings()
