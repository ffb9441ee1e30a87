"""``marco eval``: accuracy of CoT and MCTS modes on a math benchmark (MGSM,
GSM8K), with resumable per-answer results and optional DPO pairs."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..core.errors import UsageError
from ..evaluation.datasets import load_dataset
from ..evaluation.dpo_io import DpoCollector
from ..evaluation.evaluate import EvalInterrupted, EvalPlan, EvalReport, check_previous, parse_modes, run_eval
from ..evaluation.results import JsonlWriter, read_rows
from ..reasoner import Reasoner, choose_model
from ..models.registry import load_registry
from ..core.settings import GenerationSettings, SearchSettings
from ..evaluation.voting import ConfScore
from ..ui.console import err_console, is_tty, notice, out_console
from ..ui.eval_view import EvalProgress, print_table, results_table
from . import _options as o

_S = o.DEFAULT_SEARCH
_R = o.DEFAULT_RUNTIME


def eval_command(
    dataset: Annotated[Path, typer.Argument(help="Questions: MGSM-style TSV (question<TAB>answer) or JSON Lines ({\"question\", \"answer\"}, GSM8K '#### N' answers).", show_default=False)],
    modes: Annotated[str, typer.Option("--modes", help="Comma-separated: cot (greedy), sc (majority vote of --samples sampled CoTs), conf-vote (the same samples, votes weighted by confidence), mcts-step, mcts-mini64, mcts-mini32. The first is the baseline of the Δ column.")] = "cot,mcts-step",
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N questions (after --offset).", show_default=False)] = None,
    offset: Annotated[int, typer.Option("--offset", help="Skip the first N questions (--offset 50 --limit 100: questions 51-150).")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Base seed; each answer's seed derives from it, the question and the sample.")] = 0,
    samples: Annotated[int, typer.Option("--samples", help="k: the sampled CoTs sc and conf-vote vote over (made in one batch). Without sc/conf-vote: answers per question and mode (test@k counts a question right if any is).")] = 1,
    conf_keep: Annotated[float, typer.Option("--conf-keep", help="conf-vote: only this share of the samples, the most confident, votes.")] = 1.0,
    conf_score: Annotated[ConfScore, typer.Option("--conf-score", help="conf-vote: a trace's confidence: mean (eq. 2), tail (last 32 tokens) or window (lowest 16-token window).")] = ConfScore.MEAN,
    out: Annotated[Optional[Path], typer.Option("--out", help="Append one JSON line per answer here, as it is made.", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run recorded in --out: skip answers already there.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
    dpo_out: Annotated[Optional[Path], typer.Option("--dpo-out", help="Also write DPO preference pairs from every MCTS tree (JSON Lines).", show_default=False)] = None,
    max_pairs: Annotated[Optional[int], typer.Option("--max-pairs-per-question", help="Keep at most N pairs per question (largest value gaps first).", show_default=False)] = None,
    model: o.ModelOpt = None,
    models_file: o.ModelsFileOpt = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Most tokens generated per answer.")] = 1024,
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-t", help="Sampling temperature of sc, conf-vote, MCTS and of cot with --samples > 1; cot answering once is greedy [default: 0.8].", show_default=False)] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling threshold of the sampled modes [default: 0.95].", show_default=False)] = None,
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
    ctx: o.CtxOpt = _R.n_ctx,
    force_ctx: o.ForceCtxOpt = False,
    threads: o.ThreadsOpt = None,
    n_gpu_layers: o.GpuLayersOpt = None,
    kv_cache: o.KVCacheOpt = _R.kv_cache,
    verbose: o.VerboseOpt = False,
) -> None:
    """Measure CoT against MCTS on a math benchmark: accuracy, test@k, cost."""
    if resume and out is None:
        raise UsageError("--resume needs --out (the results file to continue)")
    if max_pairs is not None and max_pairs < 1:
        raise UsageError(f"--max-pairs-per-question must be at least 1, got {max_pairs}")
    parsed = parse_modes(modes)
    sampled_t = _S.temperature if temperature is None else temperature
    sampled_p = _S.top_p if top_p is None else top_p
    # cot is greedy when it answers once (the baseline); it samples only for test@k
    cot_sampled = samples > 1 and not any(m.votes for m in parsed)
    generation = GenerationSettings(
        temperature=sampled_t if cot_sampled else 0.0, top_p=sampled_p, max_tokens=max_tokens,
        loop_guard=loop_guard)
    search = SearchSettings(
        simulations=simulations, children=children, max_depth=max_depth, exploration=exploration,
        temperature=sampled_t, top_p=sampled_p, max_tokens=max_tokens,
        reflection=reflection, reflect_below=reflect_below, pick=pick, value_span=value_span, budget=budget,
        early_stop=early_stop, early_stop_min=early_stop_min, loop_guard=loop_guard,
    )
    plan = EvalPlan(parsed, "", generation, search, samples, seed, limit, offset, conf_keep, conf_score)
    problems = load_dataset(dataset)
    choice = choose_model(load_registry(models_file), model)
    plan = replace(plan, model=choice.model.label)
    # The fallback notice only when a model is about to run (not for a --resume with nothing left).
    on_load = (lambda: notice(choice.notice)) if choice.notice else None
    reasoner = Reasoner(choice.model, o.runtime_settings(ctx, threads, n_gpu_layers, kv_cache, verbose, force_ctx), on_load=on_load)
    try:
        report = _run(reasoner, problems, plan, dataset, out, resume, dpo_out, max_pairs)
    except EvalInterrupted as exc:
        _print(exc.report, dataset, as_json)
        raise
    finally:
        reasoner.close()
    _print(report, dataset, as_json)


def _run(reasoner, problems, plan: EvalPlan, dataset: Path, out, resume, dpo_out, max_pairs) -> EvalReport:
    done, keep = {}, None
    if resume and out.exists():
        previous, keep = read_rows(out)
        done = check_previous(previous, problems, plan, str(out))
    if any(k not in done for k in _keys(problems, plan)):
        _ = reasoner.backend  # load the model now: the first answer's seconds should not include loading it
    with ExitStack() as stack:
        writer = stack.enter_context(JsonlWriter(out, resume=resume, keep_bytes=keep)) if out else None
        observers = []
        if is_tty(sys.stderr):
            observers.append(EvalProgress(err_console(), [m.name for m in plan.modes]))
        if dpo_out is not None:
            pairs = stack.enter_context(JsonlWriter(dpo_out, resume=resume, option="--dpo-out"))
            observers.append(DpoCollector(
                pairs, prompt_text=reasoner.prompt_text, detokenize=lambda t: reasoner.backend.detokenize(t),
                source=dataset.name, max_pairs=max_pairs,
            ))
        return run_eval(reasoner, problems, plan, done=done, writer=writer, observers=observers,
                        detokenize=lambda t: reasoner.backend.detokenize(t))


def _keys(problems, plan: EvalPlan):
    return ((p.id, m.name, s) for p in plan.questions(problems) for m in plan.modes for s in range(plan.answers(m)))


def _print(report: EvalReport, dataset: Path, as_json: bool) -> None:
    summaries = report.summaries
    if as_json:
        data = {
            "dataset": str(dataset), "model": report.plan.model, "samples": report.plan.samples,
            "seed": report.plan.seed, "offset": report.plan.offset, "new_answers": report.new_rows, "interrupted": report.interrupted,
            "modes": [s.to_json() for s in summaries],
        }
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        title = f"{dataset.name} · {report.plan.model}" + (" · interrupted" if report.interrupted else "")
        print_table(out_console(), results_table(summaries, title=title))
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
