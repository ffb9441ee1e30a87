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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from ..core.errors import ContextOverflowError, ExitCode, MarcoError, UsageError
from ..reasoner import Answer, Interrupted
from ..core.settings import Action, GenerationSettings, Mode, SearchSettings
from .answers import extract_answer, is_correct
from .datasets import Problem
from .results import Key, ResultsError, JsonlWriter, row_key
from .stats import ModeSummary, Outcome, summarize


@dataclass(frozen=True)
class EvalMode:
    name: str
    mode: Mode
    action: Action | None = None


EVAL_MODES = {
    "cot": EvalMode("cot", Mode.COT),
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


class EvalObserver(Protocol):
    def on_start(self, pending: int, done: int) -> None: ...

    def on_row(self, row: dict[str, Any], problem: Problem, answer: Answer | None) -> None: ...

    def on_finish(self) -> None: ...


class EvalInterrupted(MarcoError):
    """Ctrl-C during an evaluation; the rows so far are on disk and in ``report``."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, report: "EvalReport") -> None:
        super().__init__("interrupted")
        self.report = report


@dataclass(frozen=True)
class EvalPlan:
    modes: tuple[EvalMode, ...]
    model: str  # the model label, part of every row's settings fingerprint
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    samples: int = 1
    seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise UsageError(f"--samples must be at least 1, got {self.samples}")
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be at least 1, got {self.limit}")

    def settings(self, mode: EvalMode, seed: int) -> tuple[GenerationSettings, SearchSettings]:
        generation = GenerationSettings(**{**asdict(self.generation), "seed": seed})
        search = self.search.with_(seed=seed, action=mode.action or self.search.action)
        return generation, search

    def fingerprint(self, mode: EvalMode) -> str:
        """Short hash of everything that decides an answer except the per-answer seed:
        resuming with other options would mix two experiments in one table."""
        generation, search = self.settings(mode, 0)
        used = asdict(generation) if mode.mode is Mode.COT else asdict(search)
        blob = json.dumps({"model": self.model, "mode": mode.name, "seed": self.seed, "settings": used},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def sample_seed(base: int, question_id: str, sample: int) -> int:
    """Seed of one answer: stable under --limit, --resume and question order."""
    entropy = [base, zlib.crc32(question_id.encode("utf-8")), sample]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


@dataclass
class EvalReport:
    plan: EvalPlan
    rows: list[dict[str, Any]]  # rows of this plan's questions and modes, old and new
    new_rows: int = 0
    interrupted: bool = False

    @property
    def summaries(self) -> list[ModeSummary]:
        outcomes = [
            Outcome(r["question_id"], r["mode"], r["sample"], bool(r["correct"]), int(r["tokens"]), float(r["seconds"]))
            for r in self.rows
        ]
        return summarize(outcomes, [m.name for m in self.plan.modes], self.plan.samples)


def check_previous(previous: Sequence[tuple[int, dict[str, Any]]], problems: Sequence[Problem],
                   plan: EvalPlan, source: str) -> dict[Key, dict[str, Any]]:
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


def run_eval(answerer: Answerer, problems: Sequence[Problem], plan: EvalPlan, *,
             done: dict[Key, dict[str, Any]] | None = None, writer: JsonlWriter | None = None,
             observers: Sequence[EvalObserver] = ()) -> EvalReport:
    """Answer every pending (question, mode, sample); raises ``EvalInterrupted``
    (carrying the report so far) on Ctrl-C."""
    done = dict(done or {})
    chosen = list(problems[: plan.limit] if plan.limit else problems)
    jobs = [(p, m, s) for p in chosen for m in plan.modes for s in range(plan.samples)]
    report = EvalReport(plan, [done[k] for k in ((p.id, m.name, s) for p, m, s in jobs) if k in done])
    pending = [(p, m, s) for p, m, s in jobs if (p.id, m.name, s) not in done]
    for observer in observers:
        observer.on_start(len(pending), len(jobs) - len(pending))
    try:
        for problem, mode, sample in pending:
            row, answer = _answer_one(answerer, problem, mode, sample, plan)
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


def _answer_one(answerer: Answerer, problem: Problem, mode: EvalMode, sample: int,
                plan: EvalPlan) -> tuple[dict[str, Any], Answer | None]:
    seed = sample_seed(plan.seed, problem.id, sample)
    generation, search = plan.settings(mode, seed)
    row: dict[str, Any] = {
        "question_id": problem.id, "mode": mode.name, "sample": sample, "seed": seed,
        "question": problem.question, "reference": problem.reference,
    }
    try:
        answer = answerer.ask(problem.question, mode=mode.mode, generation=generation, search=search)
    except ContextOverflowError as exc:
        # One question longer than the context is a wrong answer, not the end of a long run.
        row.update(prediction=None, correct=False, answer="", text="", tokens=0, seconds=0.0,
                   error=str(exc), model=plan.model, settings=plan.fingerprint(mode))
        return row, None
    # The model's format says where its answer is (a fake answerer speaks Marco-o1's).
    prediction = extract_answer(answer.text, getattr(answerer, "reasoning", None))
    row.update(
        prediction=prediction, correct=is_correct(prediction, problem.reference),
        answer=answer.answer, text=answer.text, tokens=answer.generated_tokens,
        seconds=round(answer.seconds, 3), model=plan.model, settings=plan.fingerprint(mode),
    )
    if answer.search is not None:
        row["value"] = round(answer.search.value, 6)
    return row, answer
