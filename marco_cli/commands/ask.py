"""``marco ask``: one question, one answer (stdout), reasoning on stderr."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from ..reasoner import Answer, Interrupted, Reasoner, choose_model
from ..registry import load_registry
from ..settings import GenerationSettings, Mode, SearchSettings
from ..ui.console import err_console, is_tty, notice
from ..ui.stream import AnswerStream
from . import _options as o
from ._io import read_input

_S = o.DEFAULT_SEARCH
_R = o.DEFAULT_RUNTIME


def ask(
    question: Annotated[Optional[str], typer.Argument(help="The question; '-' or a pipe reads stdin.", show_default=False)] = None,
    model: o.ModelOpt = None,
    models_file: o.ModelsFileOpt = None,
    backend: o.BackendOpt = None,
    mode: o.ModeOpt = Mode.MCTS,
    system: Annotated[Optional[str], typer.Option("--system", help="System prompt (replaces the model's default).", show_default=False)] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-t", help="Sampling temperature [default: 0 for cot, 0.8 for mcts].", show_default=False)] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Most tokens generated for the answer.")] = 1024,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same answer.")] = 0,
    show_thoughts: Annotated[bool, typer.Option("--show-thoughts", help="Print the thought on stdout too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    action: o.ActionOpt = _S.action,
    simulations: o.SimulationsOpt = _S.simulations,
    children: o.ChildrenOpt = _S.children,
    max_depth: o.MaxDepthOpt = _S.max_depth,
    exploration: o.ExplorationOpt = _S.exploration,
    reflection: o.ReflectionOpt = _S.reflection,
    reflect_below: o.ReflectBelowOpt = None,
    pick: o.PickOpt = _S.pick,
    value_span: o.ValueSpanOpt = _S.value_span,
    budget: o.BudgetOpt = None,
    ctx: o.CtxOpt = _R.n_ctx,
    threads: o.ThreadsOpt = None,
    n_gpu_layers: o.GpuLayersOpt = None,
    kv_cache: o.KVCacheOpt = _R.kv_cache,
    verbose: o.VerboseOpt = False,
) -> None:
    """Answer a question by reasoning: a chain of thought, or a tree search."""
    runtime = o.runtime_settings(ctx, threads, n_gpu_layers, kv_cache, verbose)
    generation = GenerationSettings(
        temperature=0.0 if temperature is None else temperature,
        max_tokens=max_tokens, seed=seed, system=system,
    )
    search = SearchSettings(
        action=action, simulations=simulations, children=children, max_depth=max_depth,
        exploration=exploration, temperature=_S.temperature if temperature is None else temperature,
        max_tokens=max_tokens, reflection=reflection, reflect_below=reflect_below, pick=pick,
        value_span=value_span, budget=budget, seed=seed,
    )
    text = read_input(question)
    choice = choose_model(load_registry(models_file), model, backend=backend)
    if choice.notice:
        notice(choice.notice)
    reasoner = Reasoner(choice.model, runtime)
    stream = _stream(as_json, show_thoughts) if mode is Mode.COT else None
    try:
        answer = reasoner.ask(
            text, mode=mode, generation=generation, search=search,
            on_text=stream.feed if stream else None,
        )
    except Interrupted as exc:
        _finish(exc.partial, stream, as_json, show_thoughts)
        raise
    finally:
        reasoner.close()
    _finish(answer, stream, as_json, show_thoughts)


def _stream(as_json: bool, show_thoughts: bool) -> AnswerStream | None:
    """Stream only when someone watches: answer to a stdout terminal, thought to a
    stderr terminal. Piped runs print once, at the end."""
    out_tty, err_tty = is_tty(sys.stdout), is_tty(sys.stderr)
    answer_live = out_tty and not as_json and not show_thoughts
    if not (answer_live or err_tty):
        return None
    return AnswerStream(answer_to_stdout=answer_live, thought_console=err_console() if err_tty else None)


def _finish(answer: Answer, stream: AnswerStream | None, as_json: bool, show_thoughts: bool) -> None:
    if stream is not None:
        stream.close()
    if as_json:
        sys.stdout.write(json.dumps(answer.to_json(), ensure_ascii=False) + "\n")
    elif stream is None or not stream.wrote_answer:
        if show_thoughts and answer.thought:
            sys.stdout.write(answer.thought.rstrip() + "\n\n")
        sys.stdout.write(answer.answer.rstrip() + "\n")
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)
