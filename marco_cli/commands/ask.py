"""``marco ask``: one question, one answer (stdout), reasoning on stderr."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from ..core.errors import UsageError
from ..reasoner import LOOP_NOTICE, Answer, Interrupted, Reasoner, choose_model, no_format_notice
from ..models.registry import load_registry
from ..core.settings import GenerationSettings, Mode, SearchSettings
from ..ui.console import err_console, is_tty, notice, out_console
from ..ui.heatmap import confidence_json, confidence_view
from ..ui.stream import AnswerStream
from ..ui.safe_text import for_terminal
from . import _options as o
from ._display import SearchDisplay
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
    leaves: o.LeavesOpt = "auto",
    early_stop: o.EarlyStopOpt = _S.early_stop or 0.0,
    early_stop_min: o.EarlyStopMinOpt = _S.early_stop_min,
    loop_guard: o.LoopGuardOpt = _S.loop_guard,
    ctx: o.CtxOpt = _R.n_ctx,
    force_ctx: o.ForceCtxOpt = False,
    threads: o.ThreadsOpt = None,
    n_gpu_layers: o.GpuLayersOpt = None,
    kv_cache: o.KVCacheOpt = _R.kv_cache,
    verbose: o.VerboseOpt = False,
    no_live: o.NoLiveOpt = False,
    quiet: o.QuietOpt = False,
    confidence: o.ConfidenceOpt = False,
    save_tree: o.SaveTreeOpt = None,
) -> None:
    """Answer a question by reasoning: a chain of thought, or a tree search."""
    runtime = o.runtime_settings(ctx, threads, n_gpu_layers, kv_cache, verbose, force_ctx)
    generation = GenerationSettings(
        temperature=0.0 if temperature is None else temperature,
        max_tokens=max_tokens, seed=seed, system=system, loop_guard=loop_guard,
    )
    search = SearchSettings(
        action=action, simulations=simulations, children=children, max_depth=max_depth,
        exploration=exploration, temperature=_S.temperature if temperature is None else temperature,
        max_tokens=max_tokens, reflection=reflection, reflect_below=reflect_below, pick=pick,
        value_span=value_span, budget=budget, seed=seed, leaves_per_iteration=o.parse_leaves(leaves),
        early_stop=early_stop, early_stop_min=early_stop_min, loop_guard=loop_guard,
    )
    if save_tree is not None and mode is not Mode.MCTS:
        raise UsageError("--save-tree needs --mode mcts (a chain of thought has no tree)")
    text = read_input(question)
    choice = choose_model(load_registry(models_file), model, backend=backend)
    if choice.notice:
        notice(choice.notice)
    reasoner = Reasoner(choice.model, runtime)
    if show_thoughts and not reasoner.reasoning.has_thought:
        notice(no_format_notice(choice.model))
    display = SearchDisplay(
        mode=mode, settings=search, question=text, live=not no_live, final=not quiet, save_to=save_tree
    )
    out = _Output(as_json, show_thoughts, confidence)
    stream = _stream(out, reasoner) if mode is Mode.COT else None
    try:
        with display.observe() as observer:
            answer = reasoner.ask(
                text, mode=mode, generation=generation, search=search,
                on_text=stream.feed if stream else None, observer=observer,
            )
    except Interrupted as exc:
        _finish(exc.partial, stream, out, display, reasoner)
        raise
    else:
        _finish(answer, stream, out, display, reasoner)
    finally:
        reasoner.close()


@dataclass(frozen=True)
class _Output:
    as_json: bool
    show_thoughts: bool
    confidence: bool

    @property
    def answer_at_end(self) -> bool:
        """The answer is printed whole at the end, not streamed."""
        return self.as_json or self.show_thoughts or self.confidence


def _stream(out: _Output, reasoner: Reasoner) -> AnswerStream | None:
    """Stream only when someone watches: answer to a stdout terminal, thought to a
    stderr terminal. Piped runs print once, at the end."""
    out_tty, err_tty = is_tty(sys.stdout), is_tty(sys.stderr)
    answer_live = out_tty and not out.answer_at_end
    if not (answer_live or err_tty):
        return None
    return AnswerStream(
        answer_to_stdout=answer_live, thought_console=err_console() if err_tty else None, reasoning=reasoner.reasoning
    )


def _finish(answer: Answer, stream: AnswerStream | None, out: _Output, display: SearchDisplay, reasoner: Reasoner) -> None:
    """Save the tree, then print the answer; a failed save is reported after it."""
    save_error = display.save(answer)
    if stream is not None:
        stream.close()
    if out.as_json:
        data = answer.to_json()
        if out.confidence:
            data["token_confidences"] = confidence_json(answer, reasoner.backend.detokenize)
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    elif out.confidence:
        out_console().print(confidence_view(answer, reasoner.backend.detokenize, thought=out.show_thoughts))
    elif stream is None or not stream.wrote_answer:
        if out.show_thoughts and answer.thought:
            sys.stdout.write(for_terminal(answer.thought.rstrip(), sys.stdout) + "\n\n")
        sys.stdout.write(for_terminal(answer.answer.rstrip(), sys.stdout) + "\n")
    sys.stdout.flush()
    if answer.looped:
        notice(LOOP_NOTICE)
    if save_error is not None:
        if answer.interrupted:
            notice(f"error: {save_error}")  # the exit code stays 130
        else:
            raise save_error


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)
