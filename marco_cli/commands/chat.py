"""``marco chat``: a multi-turn reasoning REPL (or a script read from stdin)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ..core.errors import ExitCode, MarcoError
from ..models.registry import load_registry
from ..chat.conversation import check_writable
from ..chat.session import ChatSession, open_session
from ..core.settings import Mode, marco_home
from ..ui.console import is_tty, notice
from ..ui.line_input import StreamLines, TerminalLines
from ..ui.repl import Repl
from ..ui.slash import COMMANDS
from . import _options as o

_S = o.DEFAULT_SEARCH
_R = o.DEFAULT_RUNTIME
HISTORY_FILE = "chat_history"



def chat(
    ctx: typer.Context,
    model: o.ModelOpt = None,
    models_file: o.ModelsFileOpt = None,
    mode: o.ModeOpt = Mode.COT,
    system: Annotated[Optional[str], typer.Option("--system", help="System prompt (replaces the model's default).", show_default=False)] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue a conversation saved with --save or /save.", show_default=False)] = None,
    save: Annotated[Optional[str], typer.Option("--save", help="Save the conversation to this JSON file on exit (and on /save).", show_default=False)] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-t", help="Sampling temperature [default: 0 for cot, 0.8 for mcts].", show_default=False)] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Most tokens generated per answer.")] = 1024,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same answers.")] = 0,
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
    early_stop: o.EarlyStopOpt = _S.early_stop or 0.0,
    early_stop_min: o.EarlyStopMinOpt = _S.early_stop_min,
    loop_guard: o.LoopGuardOpt = _S.loop_guard,
    ctx_size: o.CtxOpt = _R.n_ctx,
    force_ctx: o.ForceCtxOpt = False,
    threads: o.ThreadsOpt = None,
    n_gpu_layers: o.GpuLayersOpt = None,
    kv_cache: o.KVCacheOpt = _R.kv_cache,
    verbose: o.VerboseOpt = False,
    confidence: o.ConfidenceOpt = False,
) -> None:
    """Talk with the model, turn after turn: /help lists the commands.

    From a pipe (marco chat < script.txt) each line is one turn (\"\"\" blocks
    span lines) and each answer is printed as one block on stdout."""
    runtime = o.runtime_settings(ctx_size, threads, n_gpu_layers, kv_cache, verbose, force_ctx)
    options = dict(
        system=system, temperature=temperature, max_tokens=max_tokens, seed=seed, action=action,
        simulations=simulations, children=children, max_depth=max_depth, exploration=exploration,
        reflection=reflection, reflect_below=reflect_below, pick=pick, value_span=value_span, budget=budget,
        early_stop=early_stop, early_stop_min=early_stop_min, loop_guard=loop_guard,
    )
    # Only options given on the command line apply, so a resumed conversation
    # keeps its saved values for the others.
    overrides = {name.replace("_", "-"): v for name, v in options.items() if _given(ctx, name)}
    if save:
        check_writable(save)  # learn it now, not after a day of chatting
    session = open_session(
        load_registry(models_file), runtime, model=model, model_given=_given(ctx, "model"),
        resume=resume, overrides=overrides, mode=mode if _given(ctx, "mode") or not resume else None,
        notify=notice,
    )
    status = _run(session, save, confidence)
    if status:
        raise typer.Exit(status)


def _given(ctx: typer.Context, name: str) -> bool:
    # by name: typer >= 0.29 has its own copy of click's ParameterSource
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _run(session: ChatSession, save: str | None, confidence: bool = False) -> int:
    """Run the loop; whatever ends it (Ctrl-D, /exit, an error, Ctrl-C in a
    pipe), the history is written and the conversation saved to ``--save``."""
    interactive = is_tty(sys.stdin)
    if interactive:
        lines: TerminalLines | StreamLines = TerminalLines(
            marco_home() / HISTORY_FILE, completions=[f"/{name}" for name in COMMANDS if name.isalpha()])
    else:
        lines = StreamLines(sys.stdin.buffer)
    try:
        status = Repl(session, lines, interactive=interactive, save_path=save, confidence=confidence).run()
    except BaseException:
        _close(session, lines, save)  # a failed save must not hide what ended the session
        raise
    saved = _close(session, lines, save)
    return status if saved else int(ExitCode.ERROR)


def _close(session: ChatSession, lines: TerminalLines | StreamLines, save: str | None) -> bool:
    """Write the history and the conversation; False when the save failed
    (reported here as one line)."""
    if isinstance(lines, TerminalLines):
        lines.save_history()
    session.close()
    if not save:
        return True
    try:
        session.save(save)
    except MarcoError as exc:
        sys.stderr.write(f"marco: error: {exc}\n")
        sys.stderr.flush()
        return False
    return True


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
