"""``marco eval`` as a use case: run modes over benchmark questions through the
reasoner and record one result per (question, mode, sample).

No terminal I/O here. Order is question-major (every mode and sample of a
question before the next question), so an interrupted run leaves the modes
compared on the same questions. Seeds are derived from (--seed, question id,
sample), never from position, so ``--limit`` and ``--resume`` do not change
what any single answer would have been.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from ..core.errors import ContextOverflowError, ExitCode, MarcoError, UsageError
from ..core.settings import Action, GenerationSettings, Mode, SearchSettings
from ..reasoner import Answer, Interrupted
from .answers import extract_answer, is_correct
from .datasets import Problem
from .results import JsonlWriter, Key, ResultsError, row_key
from .stats import ModeSummary, Outcome, summarize
from .voting import ConfScore, Trace, vote


@dataclass(frozen=True)
class EvalMode:
    name: str
    mode: Mode
    action: Action | None = None
    votes: bool = False  # answers by a vote over --samples sampled chains of thought
    weighted: bool = False  # votes weighted by trace confidence (DeepConf offline)


EVAL_MODES = {
    "cot": EvalMode("cot", Mode.COT),
    "sc": EvalMode("sc", Mode.COT, votes=True),
    "conf-vote": EvalMode("conf-vote", Mode.COT, votes=True, weighted=True),
    "mcts-step": EvalMode("mcts-step", Mode.MCTS, Action.STEP),
    "mcts-mini64": EvalMode("mcts-mini64", Mode.MCTS, Action.MINI_64),
    "mcts-mini32": EvalMode("mcts-mini32", Mode.MCTS, Action.MINI_32),
}


def parse_modes(spec: str) -> tuple[EvalMode, ...]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UsageError("--modes is empty; give e.g. cot,mcts-step")
    for name in names:
        if name not in EVAL_MODES:
            raise UsageError(f"unknown mode '{name}' in --modes (choose from {', '.join(EVAL_MODES)})")
    if len(set(names)) != len(names):
        raise UsageError(f"--modes names a mode twice: {spec}")
    return tuple(EVAL_MODES[n] for n in names)


class Answerer(Protocol):
    """What ``run_eval`` needs of ``Reasoner``."""

    def ask(self, question: str, *, mode: Mode, generation: GenerationSettings, search: SearchSettings) -> Answer: ...

    def sample(self, question: str, k: int, generation: GenerationSettings) -> list[Answer]:
        """``k`` sampled chains of thought (seeds ``generation.seed + i``), made together."""
        ...


class EvalObserver(Protocol):
    def on_start(self, pending: int, done: int) -> None: ...

    def on_row(self, row: dict[str, Any], problem: Problem, answer: Answer | None) -> None: ...

    def on_finish(self) -> None: ...


class EvalInterrupted(MarcoError):
    """Ctrl-C during an evaluation; the rows so far are on disk and in ``report``."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, report: EvalReport) -> None:
        super().__init__("interrupted")
        self.report = report


@dataclass(frozen=True)
class EvalPlan:
    modes: tuple[EvalMode, ...]
    model: str  # the model label, part of every row's settings fingerprint
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    samples: int = 1  # k of sc / conf-vote; else answers per question (test@k)
    seed: int = 0
    limit: int | None = None
    offset: int = 0  # questions skipped at the start (--offset 50 --limit 100: questions 51-150)
    conf_keep: float = 1.0  # conf-vote: share of the most confident traces that vote
    conf_score: ConfScore = ConfScore.MEAN  # conf-vote: the trace confidence that weighs a vote

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise UsageError(f"--samples must be at least 1, got {self.samples}")
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be at least 1, got {self.limit}")
        if self.offset < 0:
            raise UsageError(f"--offset must be 0 or more, got {self.offset}")
        if not 0 < self.conf_keep <= 1:
            raise UsageError(f"--conf-keep must be in (0, 1], got {self.conf_keep}")

    @property
    def voting(self) -> bool:
        return any(m.votes for m in self.modes)

    def answers(self, mode: EvalMode) -> int:
        """Rows per question: a voting mode answers once from its k samples, and
        beside one the other modes answer once too (they are what it is compared
        with); alone, cot and mcts answer --samples times (test@k)."""
        return 1 if mode.votes or self.voting else self.samples

    def questions(self, problems: Sequence[Problem]) -> list[Problem]:
        chosen = list(problems[self.offset :])
        return chosen[: self.limit] if self.limit else chosen

    def settings(self, mode: EvalMode, seed: int) -> tuple[GenerationSettings, SearchSettings]:
        changes: dict[str, Any] = {"seed": seed}
        if mode.votes:  # sampled like the search's expansions
            changes.update(temperature=self.search.temperature, top_p=self.search.top_p)
        generation = replace(self.generation, **changes)
        search = self.search.with_(seed=seed, action=mode.action or self.search.action)
        return generation, search

    def fingerprint(self, mode: EvalMode) -> str:
        """Short hash of everything that decides an answer except the per-answer seed:
        resuming with other options would mix two experiments in one table."""
        generation, search = self.settings(mode, 0)
        used: dict[str, Any] = asdict(generation) if mode.mode is Mode.COT else asdict(search)
        if mode.votes:
            used["k"] = self.samples
        if mode.weighted:
            used.update(conf_keep=self.conf_keep, conf_score=self.conf_score.value)
        blob = json.dumps(
            {"model": self.model, "mode": mode.name, "seed": self.seed, "settings": used}, sort_keys=True, default=str
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def sample_seed(base: int, question_id: str, sample: int) -> int:
    """Seed of one answer: stable under --limit, --resume and question order."""
    entropy = [base, zlib.crc32(question_id.encode("utf-8")), sample]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


def row_outcomes(rows: Sequence[dict[str, Any]]) -> list[Outcome]:
    """What the summary needs of each results row (``--out`` JSON lines)."""
    return [
        Outcome(
            r["question_id"],
            r["mode"],
            r["sample"],
            bool(r["correct"]),
            int(r["tokens"]),
            float(r["seconds"]),
            r.get("any_correct"),
        )
        for r in rows
    ]


@dataclass
class EvalReport:
    plan: EvalPlan
    rows: list[dict[str, Any]]  # rows of this plan's questions and modes, old and new
    new_rows: int = 0
    interrupted: bool = False

    @property
    def summaries(self) -> list[ModeSummary]:
        plan = self.plan
        return summarize(
            row_outcomes(self.rows),
            [m.name for m in plan.modes],
            {m.name: plan.samples if m.votes else plan.answers(m) for m in plan.modes},
        )


def check_previous(
    previous: Sequence[tuple[int, dict[str, Any]]], problems: Sequence[Problem], plan: EvalPlan, source: str
) -> dict[Key, dict[str, Any]]:
    """Rows of an earlier run that this run may reuse, by key; refuses rows that
    would mix experiments (another dataset, model or settings)."""
    questions = {p.id: p.question for p in problems}
    prints = {m.name: plan.fingerprint(m) for m in plan.modes}
    done: dict[Key, dict[str, Any]] = {}
    for line, row in previous:
        qid = str(row["question_id"])
        if questions.get(qid) != row["question"]:
            what = "is not in this dataset" if qid not in questions else "differs from this dataset's"
            raise ResultsError(f"{source}:{line}: question {qid} {what}; was the file made from another dataset?")
        if row["mode"] in prints and row["settings"] != prints[row["mode"]]:
            raise ResultsError(
                f"{source}:{line}: mode {row['mode']} was run with another model, --seed or options",
                hint="resume with the same options, or choose another --out",
            )
        done[row_key(row)] = row
    return done


def run_eval(
    answerer: Answerer,
    problems: Sequence[Problem],
    plan: EvalPlan,
    *,
    done: dict[Key, dict[str, Any]] | None = None,
    writer: JsonlWriter | None = None,
    observers: Sequence[EvalObserver] = (),
    detokenize: Callable[[Sequence[int]], str] | None = None,
) -> EvalReport:
    """Answer every pending (question, mode, sample); raises ``EvalInterrupted``
    (carrying the report so far) on Ctrl-C. With ``detokenize``, MCTS rows also
    record every finished rollout's answer and value (to compare picks offline)."""
    done = dict(done or {})
    chosen = plan.questions(problems)
    jobs = [(p, m, s) for p in chosen for m in plan.modes for s in range(plan.answers(m))]
    report = EvalReport(plan, [done[k] for k in ((p.id, m.name, s) for p, m, s in jobs) if k in done])
    pending = [(p, m, s) for p, m, s in jobs if (p.id, m.name, s) not in done]
    for observer in observers:
        observer.on_start(len(pending), len(jobs) - len(pending))
    samples: tuple[str, list[Answer] | ContextOverflowError] | None = None  # the current question's k samples
    try:
        for problem, mode, sample in pending:
            if mode.votes:
                if samples is None or samples[0] != problem.id:
                    samples = (problem.id, _sample(answerer, problem, plan))
                row, answer = _vote_row(problem, mode, samples[1], plan)
            else:
                row, answer = _answer_one(answerer, problem, mode, sample, plan, detokenize)
            if writer is not None:
                writer.append(row)
            report.rows.append(row)
            report.new_rows += 1
            for observer in observers:
                observer.on_row(row, problem, answer)
    except (KeyboardInterrupt, Interrupted):
        report.interrupted = True
        raise EvalInterrupted(report) from None
    finally:
        for observer in observers:
            observer.on_finish()
    return report


def _sample(answerer: Answerer, problem: Problem, plan: EvalPlan) -> list[Answer] | ContextOverflowError:
    """The k sampled chains of thought that every voting mode of a question scores."""
    generation, _ = plan.settings(EVAL_MODES["sc"], sample_seed(plan.seed, problem.id, 0))
    try:
        return answerer.sample(problem.question, plan.samples, generation)
    except ContextOverflowError as exc:
        return exc


def _row(problem: Problem, mode: EvalMode, sample: int, seed: int) -> dict[str, Any]:
    """The fields every row starts with: which answer it is, and to what."""
    return {
        "question_id": problem.id,
        "mode": mode.name,
        "sample": sample,
        "seed": seed,
        "question": problem.question,
        "reference": problem.reference,
    }


def _overflowed(row: dict[str, Any], exc: ContextOverflowError, mode: EvalMode, plan: EvalPlan) -> dict[str, Any]:
    """One question longer than the context is a wrong answer, not the end of a long run."""
    row.update(
        prediction=None,
        correct=False,
        answer="",
        text="",
        tokens=0,
        seconds=0.0,
        error=str(exc),
        model=plan.model,
        settings=plan.fingerprint(mode),
    )
    return row


def _vote_row(
    problem: Problem, mode: EvalMode, samples: list[Answer] | ContextOverflowError, plan: EvalPlan
) -> tuple[dict[str, Any], Answer | None]:
    """One row of sc or conf-vote: the voted answer, the cost of all k samples,
    and every trace's prediction and confidences (to re-score offline)."""
    row = _row(problem, mode, 0, sample_seed(plan.seed, problem.id, 0))
    if isinstance(samples, ContextOverflowError):
        return _overflowed(row, samples, mode, plan), None
    # a trace the loop guard ended abstains, as a looped rollout does in the search's vote
    traces = [Trace.from_confidences(None if a.looped else extract_answer(a.text), a.confidences) for a in samples]
    score = plan.conf_score if mode.weighted else None
    result = vote(traces, weight=score, keep=plan.conf_keep if mode.weighted else 1.0)
    # the text shown for the vote: its most confident trace (first one for sc)
    backing = [i for i, t in enumerate(traces) if t.prediction == result.prediction and t.prediction is not None]
    if backing and score is not None:
        backing.sort(key=lambda i: (-traces[i].score(score), i))
    chosen = samples[backing[0]] if backing else samples[0]
    row.update(
        prediction=result.prediction,
        correct=is_correct(result.prediction, problem.reference),
        answer=chosen.answer,
        text=chosen.text,
        tokens=sum(a.generated_tokens for a in samples),
        seconds=round(max(a.seconds for a in samples), 3),
        model=plan.model,
        settings=plan.fingerprint(mode),
        k=len(samples),
        vote_share=round(result.weight, 6),
        voters=result.voters,
        any_correct=any(is_correct(t.prediction, problem.reference) for t in traces),
        looped=sum(a.looped for a in samples),
        traces=[t.to_json() for t in traces],
    )
    return row, chosen


def _answer_one(
    answerer: Answerer,
    problem: Problem,
    mode: EvalMode,
    sample: int,
    plan: EvalPlan,
    detokenize: Callable[[Sequence[int]], str] | None = None,
) -> tuple[dict[str, Any], Answer | None]:
    seed = sample_seed(plan.seed, problem.id, sample)
    generation, search = plan.settings(mode, seed)
    row = _row(problem, mode, sample, seed)
    try:
        answer = answerer.ask(problem.question, mode=mode.mode, generation=generation, search=search)
    except ContextOverflowError as exc:
        return _overflowed(row, exc, mode, plan), None
    # The model's format says where its answer is (a fake answerer speaks Marco-o1's).
    prediction = extract_answer(answer.text, getattr(answerer, "reasoning", None))
    row.update(
        prediction=prediction,
        correct=is_correct(prediction, problem.reference),
        answer=answer.answer,
        text=answer.text,
        tokens=answer.generated_tokens,
        seconds=round(answer.seconds, 3),
        model=plan.model,
        settings=plan.fingerprint(mode),
    )
    if answer.search is not None:
        row["value"] = round(answer.search.value, 6)
        row["stopped_by"] = answer.search.stopped_by.value
        # every pick's answer from this one tree, so one run compares them
        row["picks"] = {}
        for choice in answer.search.picks:
            prediction = extract_answer(choice.text)
            row["picks"][choice.pick.value] = {
                "prediction": prediction,
                "correct": is_correct(prediction, problem.reference),
                "value": round(choice.value, 6),
                "estimated": choice.estimated,
            }
        if detokenize is not None:
            row["rollouts"] = [
                {
                    "prediction": extract_answer(detokenize(r.tokens)),
                    "key": r.answer_key,  # what the search's vote groups by
                    "value": round(r.value, 6),
                    "stop": r.stop.value,
                    "tokens": len(r.tokens),
                    "iteration": r.iteration,
                    "simulations": r.simulations,
                    "searched_tokens": r.searched_tokens,
                }
                for r in answer.search.rollouts
            ]
    return row, answer
