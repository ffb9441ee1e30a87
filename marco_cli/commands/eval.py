"""``marco eval``: accuracy of CoT and MCTS modes on a math benchmark (MGSM,
GSM8K), with resumable per-answer results and optional DPO pairs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..core.errors import UsageError
from ..evaluation.datasets import Problem, load_dataset
from ..evaluation.results import JsonlWriter, Key, read_rows
from ..evaluation.voting import ConfScore
from ..reasoner import Reasoner
from ..ui.console import err_console, is_tty, notice, out_console
from ..ui.eval_view import EvalProgress, print_table, results_table
from . import _options as o

if TYPE_CHECKING:
    from ..evaluation.evaluate import EvalPlan, EvalReport


@o.settings_flags(without=("action", "samples"))  # the modes name the action; --samples is its own (below)
def eval_command(
    dataset: Annotated[
        Path,
        typer.Argument(
            metavar="DATASET",
            help='Questions: MGSM-style TSV (question<TAB>answer) or JSON Lines ({"question", "answer"}, GSM8K \'#### N\' answers).',
            show_default=False,
        ),
    ],
    modes: Annotated[
        str,
        typer.Option(
            "--modes",
            metavar="MODE,...",
            help="Comma-separated: cot (greedy), sc (majority vote of --samples sampled CoTs), conf-vote (the same samples, votes weighted by confidence), mcts-step, mcts-mini64, mcts-mini32. The first is the baseline of the Δ column.",
        ),
    ] = "cot,mcts-step",
    limit: Annotated[
        int | None,
        typer.Option("--limit", metavar="N", help="Only the first N questions (after --offset).", show_default=False),
    ] = None,
    offset: Annotated[
        int,
        typer.Option(
            "--offset", metavar="N", help="Skip the first N questions (--offset 50 --limit 100: questions 51-150)."
        ),
    ] = 0,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            metavar="K",
            help="k: the sampled CoTs sc and conf-vote vote over (made in one batch). Without sc/conf-vote: answers per question and mode (test@k counts a question right if any is). Each answer's seed derives from --seed, the question and the sample.",
        ),
    ] = 1,
    conf_keep: Annotated[
        float,
        typer.Option(
            "--conf-keep", metavar="SHARE", help="conf-vote: only this share of the samples, the most confident, votes."
        ),
    ] = 1.0,
    conf_score: Annotated[
        ConfScore,
        typer.Option(
            "--conf-score",
            help="conf-vote: a trace's confidence: mean (eq. 2), tail (last 32 tokens) or window (lowest 16-token window).",
        ),
    ] = ConfScore.MEAN,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="FILE", help="Append one JSON line per answer here, as it is made.", show_default=False
        ),
    ] = None,
    resume: o.ResumeOpt = None,
    as_json: o.JsonOpt = False,
    dpo_out: Annotated[
        Path | None,
        typer.Option(
            "--dpo-out",
            metavar="FILE",
            help="Also write DPO preference pairs from every MCTS tree (JSON Lines).",
            show_default=False,
        ),
    ] = None,
    max_pairs: o.MaxPairsOpt = None,
    *,
    flags: o.Flags,
) -> None:
    """Measure CoT against MCTS on a math benchmark: accuracy, test@k, cost.

    A table per mode on stdout; with --json, the same as one object."""
    from ..evaluation.evaluate import EvalInterrupted, EvalPlan, parse_modes  # numpy loads here, not for --help

    resumed = o.check_resume(resume, str(out) if out is not None else None, writer_flag="--out")
    if resumed is not None:
        if out is not None and Path(resumed) != out:
            raise UsageError(f"--resume {resumed} and --out {out} name two files; the run continues in one")
        out = Path(resumed)
    o.check_max_pairs(max_pairs)
    parsed = parse_modes(modes)
    search = flags.search()  # sc, conf-vote and the searches sample (default_temperature: 0.8)
    # cot is greedy when it answers once (the baseline); it samples only for test@k
    cot_sampled = samples > 1 and not any(m.votes for m in parsed)
    generation = replace(flags.generation(), temperature=search.temperature if cot_sampled else 0.0)
    plan = EvalPlan(parsed, "", generation, search, samples, flags["seed"], limit, offset, conf_keep, conf_score)
    problems = load_dataset(dataset)
    choice = o.choose(flags)
    plan = replace(plan, model=choice.model.label)
    # The fallback notice only when a model is about to run (not for a --resume with nothing left).
    message = choice.notice
    on_load = (lambda: notice(message)) if message else None
    reasoner = Reasoner(choice.model, flags.runtime(), on_load=on_load)
    try:
        report = _run(reasoner, problems, plan, dataset, out, resumed is not None, dpo_out, max_pairs)
    except EvalInterrupted as exc:
        _print(exc.report, dataset, as_json)
        raise
    finally:
        reasoner.close()
    _print(report, dataset, as_json)


def _run(
    reasoner: Reasoner,
    problems: Sequence[Problem],
    plan: EvalPlan,
    dataset: Path,
    out: Path | None,
    resume: bool,
    dpo_out: Path | None,
    max_pairs: int | None,
) -> EvalReport:
    from ..evaluation.dpo_io import DpoCollector
    from ..evaluation.evaluate import EvalObserver, check_previous, run_eval

    done: dict[Key, dict[str, Any]] = {}
    keep: int | None = None
    if resume and out is not None and out.exists():
        previous, keep = read_rows(out)
        done = check_previous(previous, problems, plan, str(out))
    if any(k not in done for k in _keys(problems, plan)):
        _ = reasoner.backend  # load the model now: the first answer's seconds should not include loading it
    with ExitStack() as stack:
        writer = stack.enter_context(JsonlWriter(out, resume=resume, keep_bytes=keep)) if out else None
        observers: list[EvalObserver] = []
        if is_tty(sys.stderr):
            observers.append(EvalProgress(err_console(), [m.name for m in plan.modes]))
        if dpo_out is not None:
            pairs = stack.enter_context(JsonlWriter(dpo_out, resume=resume, option="--dpo-out"))
            observers.append(
                DpoCollector(
                    pairs,
                    prompt_text=reasoner.prompt_text,
                    detokenize=lambda t: reasoner.backend.detokenize(t),
                    source=dataset.name,
                    max_pairs=max_pairs,
                )
            )
        return run_eval(
            reasoner,
            problems,
            plan,
            done=done,
            writer=writer,
            observers=observers,
            detokenize=lambda t: reasoner.backend.detokenize(t),
        )


def _keys(problems: Sequence[Problem], plan: EvalPlan) -> Iterator[Key]:
    return ((p.id, m.name, s) for p in plan.questions(problems) for m in plan.modes for s in range(plan.answers(m)))


def _print(report: EvalReport, dataset: Path, as_json: bool) -> None:
    summaries = report.summaries
    if as_json:
        data = {
            "dataset": str(dataset),
            "model": report.plan.model,
            "samples": report.plan.samples,
            "seed": report.plan.seed,
            "offset": report.plan.offset,
            "new_answers": report.new_rows,
            "interrupted": report.interrupted,
            "modes": [s.to_json() for s in summaries],
        }
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        title = f"{dataset.name} · {report.plan.model}" + (" · interrupted" if report.interrupted else "")
        print_table(out_console(), results_table(summaries, title=title))
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
