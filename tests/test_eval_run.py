"""The eval use case with a fake answerer: order, seeds, results file, resume,
interruption, refusals; and the CLI's Ctrl-C path (partial table, exit 130)."""

from __future__ import annotations

import json
from dataclasses import replace

import eval_table
import pytest
from typer.testing import CliRunner

from marco_cli.cli import app
from marco_cli.core.errors import ContextOverflowError, UsageError
from marco_cli.core.settings import Action, Mode
from marco_cli.evaluation.datasets import load_dataset
from marco_cli.evaluation.evaluate import (
    EvalInterrupted,
    EvalPlan,
    check_previous,
    parse_modes,
    run_eval,
    sample_seed,
)
from marco_cli.evaluation.results import JsonlWriter, ResultsError, read_rows
from marco_cli.reasoner import Answer

QUESTIONS = [("What is 2+2?", "4"), ("What is 3+4?", "7"), ("What is 10-1?", "9"), ("What is 6*7?", "42")]


class FakeAnswerer:
    """Answers right in MCTS, right in CoT only for even seeds; can raise Ctrl-C."""

    def __init__(self, *, interrupt_at: int | None = None, overflow: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.interrupt_at = interrupt_at
        self.overflow = overflow

    def ask(self, question, *, mode, generation, search):
        self.calls.append((question, mode, generation.seed, search.seed, search.action))
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        if question == self.overflow:
            raise ContextOverflowError("the prompt does not fit")
        right = dict(QUESTIONS)[question]
        seed = generation.seed if mode is Mode.COT else search.seed
        value = right if mode is Mode.MCTS or seed % 2 == 0 else "0"
        text = f"<Thought>thinking</Thought>\n<Output>The answer is {value}.</Output>"
        return Answer(
            question=question,
            answer=f"The answer is {value}.",
            thought="thinking",
            text=text,
            model="fake",
            mode=mode,
            prompt_tokens=5,
            generated_tokens=7 if mode is Mode.COT else 30,
            seconds=0.01,
        )

    def sample(self, question, k, generation):
        """k traces: right (confident) at i % 3 == 0, else "0" (unsure), so a
        majority of k=5 is wrong and a confidence vote is right."""
        self.calls.append((question, "sample", generation.seed, k, generation.temperature))
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        if question == self.overflow:
            raise ContextOverflowError("the prompt does not fit")
        right = dict(QUESTIONS)[question]
        out = []
        for i in range(k):
            value, conf = (right, 0.9) if i % 3 == 0 else ("0", 0.2)
            text = f"<Thought>try {i}</Thought>\n<Output>The answer is {value}.</Output>"
            out.append(
                Answer(
                    question=question,
                    answer=f"The answer is {value}.",
                    thought=f"try {i}",
                    text=text,
                    model="fake",
                    mode=Mode.COT,
                    prompt_tokens=5,
                    generated_tokens=10 + i,
                    seconds=0.5,
                    confidences=(conf,) * (10 + i),
                )
            )
        return out


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "math.tsv"
    path.write_text("".join(f"{q}\t{a}\n" for q, a in QUESTIONS), encoding="utf-8")
    return path


def _plan(**kw):
    return EvalPlan(parse_modes(kw.pop("modes", "cot,mcts-step")), "fake", **kw)


def test_modes_parse_and_refuse_nonsense():
    assert [(m.name, m.mode, m.action) for m in parse_modes("cot, mcts-mini32")] == [
        ("cot", Mode.COT, None),
        ("mcts-mini32", Mode.MCTS, Action.MINI_32),
    ]
    for bad in ("", "cot,cot", "cot,beam"):
        with pytest.raises(UsageError):
            parse_modes(bad)


def test_rows_are_question_major_seeded_and_flushed(dataset, tmp_path):
    problems = load_dataset(dataset)
    out = tmp_path / "r.jsonl"
    answerer = FakeAnswerer()
    with JsonlWriter(out, resume=False) as writer:
        report = run_eval(answerer, problems, _plan(samples=2, seed=5, limit=3), writer=writer)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == report.new_rows == 3 * 2 * 2
    assert [(r["question_id"], r["mode"], r["sample"]) for r in rows[:4]] == [
        ("math:1", "cot", 0),
        ("math:1", "cot", 1),
        ("math:1", "mcts-step", 0),
        ("math:1", "mcts-step", 1),
    ]
    # one seed per (question, sample), the same for every mode
    assert rows[0]["seed"] == rows[2]["seed"] == sample_seed(5, "math:1", 0) != rows[1]["seed"]
    assert all(r["mode"] != "mcts-step" or r["correct"] for r in rows)
    assert {r["prediction"] for r in rows if r["mode"] == "mcts-step"} == {"4", "7", "9"}
    assert all(c[4] is Action.STEP for c in answerer.calls)
    mcts = report.summaries[1]
    assert mcts.accuracy == 1.0 and mcts.test_at_k == 1.0 and mcts.questions == 3


def test_same_seed_same_rows(dataset):
    problems = load_dataset(dataset)
    first = run_eval(FakeAnswerer(), problems, _plan(seed=3)).rows
    again = run_eval(FakeAnswerer(), problems, _plan(seed=3)).rows
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(first) == strip(again)


def test_interrupt_keeps_rows_on_disk_and_resume_finishes(dataset, tmp_path):
    problems = load_dataset(dataset)
    out = tmp_path / "r.jsonl"
    plan = _plan()
    with pytest.raises(EvalInterrupted) as info, JsonlWriter(out, resume=False) as writer:
        run_eval(FakeAnswerer(interrupt_at=4), problems, plan, writer=writer)
    assert info.value.report.interrupted and info.value.exit_code == 130
    assert len(out.read_text().splitlines()) == 3  # the fourth answer never finished
    # a kill mid-write leaves a torn last line: it is dropped, not an error
    with out.open("a") as f:
        f.write('{"question_id": "math:2", "mo')
    previous, keep = read_rows(out)
    done = check_previous(previous, problems, plan, str(out))
    answerer = FakeAnswerer()
    with JsonlWriter(out, resume=True, keep_bytes=keep) as writer:
        report = run_eval(answerer, problems, plan, done=done, writer=writer)
    assert len(answerer.calls) == 8 - 3 and report.new_rows == 5 and len(report.rows) == 8
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    keys = [(r["question_id"], r["mode"], r["sample"]) for r in rows]
    assert len(keys) == len(set(keys)) == 8


def test_resume_refuses_other_settings_or_dataset(dataset, tmp_path):
    problems = load_dataset(dataset)
    out = tmp_path / "r.jsonl"
    with JsonlWriter(out, resume=False) as writer:
        run_eval(FakeAnswerer(), problems, _plan(limit=1), writer=writer)
    previous, _ = read_rows(out)
    with pytest.raises(ResultsError, match="mode cot was run with another model, --seed or options"):
        check_previous(previous, problems, _plan(seed=9), str(out))
    other = [p.__class__(p.id, p.question + "!", p.reference) for p in problems]
    with pytest.raises(ResultsError, match=r"r.jsonl:1: question math:1 differs"):
        check_previous(previous, other, _plan(), str(out))
    with pytest.raises(ResultsError, match="already exists"):
        JsonlWriter(out, resume=False)
    out.write_text("not json\n{}\n")
    with pytest.raises(ResultsError, match=r"r.jsonl:1: not a JSON line"):
        read_rows(out)


def test_a_question_too_long_for_the_context_counts_as_wrong(dataset):
    problems = load_dataset(dataset)
    report = run_eval(FakeAnswerer(overflow="What is 3+4?"), problems, _plan(modes="mcts-step"))
    bad = [r for r in report.rows if r["question_id"] == "math:2"]
    assert bad[0]["correct"] is False and "does not fit" in bad[0]["error"]
    assert report.summaries[0].accuracy == pytest.approx(0.75)


def placeholder_model(tmp_path) -> str:
    """The command checks that the model file exists before it builds the
    Reasoner, which these tests replace: an empty file keeps them free of the
    embedded model."""
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"")
    return str(path)


def test_cli_ctrl_c_prints_partial_table_and_exits_130(dataset, tmp_path, monkeypatch):
    import marco_cli.commands.eval as command

    class FakeReasoner(FakeAnswerer):
        backend = None  # the command loads the model before the first answer

        def __init__(self, model, runtime, **_kw):
            super().__init__(interrupt_at=3)

        def close(self):
            pass

    monkeypatch.setattr(command, "Reasoner", FakeReasoner)
    model = placeholder_model(tmp_path)
    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(app, ["eval", str(dataset), "-m", model, "--out", str(out)])
    assert result.exit_code == 130, result.stderr
    assert "marco: interrupted" in result.stderr
    assert "math.tsv" in result.stdout and "interrupted" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in lines] == ["cot", "mcts-step"]
    assert len(out.read_text().splitlines()) == 2
    # resume picks up from there, and --json prints the summary
    monkeypatch.setattr(FakeReasoner, "__init__", lambda self, model, runtime, **_kw: FakeAnswerer.__init__(self))
    result = CliRunner().invoke(app, ["eval", str(dataset), "-m", model, "--out", str(out), "--resume", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["new_answers"] == 6 and [m["questions"] for m in data["modes"]] == [4, 4]
    assert data["modes"][1]["accuracy"] == 1.0 and data["modes"][1]["diff"] is not None


def test_cli_usage_errors(dataset, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(dataset), "--resume"])
    assert result.exit_code == 2 and "--resume needs --out" in result.stderr
    result = runner.invoke(app, ["eval", str(dataset), "--modes", "cot,beam", "-m", "tiny"])
    assert result.exit_code == 2 and "unknown mode 'beam'" in result.stderr
    result = runner.invoke(app, ["eval", str(tmp_path / "none.tsv"), "-m", "tiny"])
    assert result.exit_code == 2 and "dataset not found" in result.stderr


def test_sc_and_conf_vote_share_one_batch_of_samples(dataset, tmp_path):
    problems = load_dataset(dataset)
    answerer = FakeAnswerer()
    plan = _plan(modes="cot,sc,conf-vote", samples=5, seed=2, limit=2)
    report = run_eval(answerer, problems, plan)
    # one sampling call per question, k=5, at the search's temperature; cot once, greedy
    samples = [c for c in answerer.calls if c[1] == "sample"]
    assert [(c[0], c[2], c[3], c[4]) for c in samples] == [
        (q, sample_seed(2, f"math:{i}", 0), 5, 0.6) for i, (q, _) in enumerate(QUESTIONS[:2], 1)
    ]
    assert [(r["question_id"], r["mode"], r["sample"]) for r in report.rows] == [
        (f"math:{i}", m, 0) for i in (1, 2) for m in ("cot", "sc", "conf-vote")
    ]
    sc, conf = report.rows[1], report.rows[2]
    assert sc["prediction"] == "0" and not sc["correct"] and sc["vote_share"] == pytest.approx(0.6)
    assert conf["prediction"] == "4" and conf["correct"] and "is 4" in conf["text"]
    assert sc["tokens"] == conf["tokens"] == 10 + 11 + 12 + 13 + 14  # every sample's tokens
    assert sc["k"] == 5 and sc["any_correct"] and [t["prediction"] for t in sc["traces"]] == ["4", "0", "0", "4", "0"]
    assert sc["settings"] != conf["settings"] != report.rows[0]["settings"]
    summaries = {s.mode: s for s in report.summaries}
    assert summaries["sc"].accuracy == 0 and summaries["sc"].test_at_k == 1 and summaries["sc"].k == 5
    assert summaries["conf-vote"].accuracy == 1 and summaries["conf-vote"].diff == pytest.approx(
        1 - summaries["cot"].accuracy
    )
    assert summaries["conf-vote"].tokens_per_question == 60
    assert summaries["conf-vote"].accuracy_per_1k_tokens == pytest.approx(100 / 0.06)
    assert summaries["cot"].k == 1 and summaries["cot"].samples == 2


def test_conf_vote_keep_and_score_are_part_of_its_settings(dataset):
    problems = load_dataset(dataset)
    base = _plan(modes="sc,conf-vote", samples=5)
    kept = _plan(modes="sc,conf-vote", samples=5, conf_keep=0.4)
    assert base.fingerprint(base.modes[0]) == kept.fingerprint(kept.modes[0])  # sc does not use them
    assert base.fingerprint(base.modes[1]) != kept.fingerprint(kept.modes[1])
    assert base.fingerprint(base.modes[0]) != _plan(modes="sc", samples=4).fingerprint(parse_modes("sc")[0])
    # keeping the top 40 % by confidence leaves only the right traces
    row = run_eval(FakeAnswerer(), problems, _plan(modes="conf-vote", samples=5, conf_keep=0.4, limit=1)).rows[0]
    assert row["prediction"] == "4" and row["voters"] == 2
    for bad in (dict(conf_keep=0), dict(conf_keep=1.5), dict(offset=-1)):
        with pytest.raises(UsageError):
            _plan(**bad)


def test_offset_selects_a_slice_with_unchanged_seeds(dataset):
    problems = load_dataset(dataset)
    rows = run_eval(FakeAnswerer(), problems, _plan(modes="cot", offset=1, limit=2, seed=4)).rows
    assert [r["question_id"] for r in rows] == ["math:2", "math:3"]
    assert rows[0]["seed"] == sample_seed(4, "math:2", 0)
    assert run_eval(FakeAnswerer(), problems, _plan(modes="cot", offset=4)).rows == []


def test_resume_of_a_voting_run_samples_only_what_is_missing(dataset, tmp_path):
    problems = load_dataset(dataset)
    out = tmp_path / "r.jsonl"
    plan = _plan(modes="sc,conf-vote", samples=3)
    with pytest.raises(EvalInterrupted), JsonlWriter(out, resume=False) as writer:
        run_eval(FakeAnswerer(interrupt_at=3), problems, plan, writer=writer)
    assert len(out.read_text().splitlines()) == 4  # questions 1 and 2, both modes
    previous, keep = read_rows(out)
    answerer = FakeAnswerer()
    with JsonlWriter(out, resume=True, keep_bytes=keep) as writer:
        report = run_eval(
            answerer, problems, plan, done=check_previous(previous, problems, plan, str(out)), writer=writer
        )
    assert [c[0] for c in answerer.calls] == [QUESTIONS[2][0], QUESTIONS[3][0]]
    assert len(report.rows) == 8 and report.new_rows == 4


def test_cli_sc_conf_vote_table_and_json(dataset, tmp_path, monkeypatch):
    import marco_cli.commands.eval as command

    class FakeReasoner(FakeAnswerer):
        backend = None  # the command loads the model before the first answer

        def __init__(self, model, runtime, **_kw):
            super().__init__()

        def close(self):
            pass

    monkeypatch.setattr(command, "Reasoner", FakeReasoner)
    args = [
        "eval",
        str(dataset),
        "-m",
        placeholder_model(tmp_path),
        "--modes",
        "cot,sc,conf-vote",
        "--samples",
        "5",
        "--offset",
        "1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert eval_table.header(result.stdout) == eval_table.COLUMNS
    body = eval_table.body(result.stdout)
    assert [(r[0], r[1], r[2]) for r in body] == [("cot", "3", "1"), ("sc", "3", "5"), ("conf-vote", "3", "5")]
    result = CliRunner().invoke(app, [*args, "--json", "--conf-keep", "0.4", "--conf-score", "window"])
    data = json.loads(result.stdout)
    assert data["offset"] == 1 and [m["mode"] for m in data["modes"]] == ["cot", "sc", "conf-vote"]
    assert data["modes"][2]["accuracy"] == 1.0 and data["modes"][2]["tokens_per_question"] == 60
    assert "accuracy_per_1k_tokens" in data["modes"][0]
    result = CliRunner().invoke(app, [*args, "--conf-keep", "0"])
    assert result.exit_code == 2 and "--conf-keep must be in (0, 1]" in result.stderr


def test_a_looped_sample_abstains_from_the_vote(dataset):
    from marco_cli.backends.base import StopReason

    class Looping(FakeAnswerer):
        def sample(self, question, k, generation):
            out = super().sample(question, k, generation)
            # the right answers "looped": without them the wrong answer is all that votes
            return [replace(a, stop=StopReason.LOOP) if i % 3 == 0 else a for i, a in enumerate(out)]

    row = run_eval(Looping(), load_dataset(dataset), _plan(modes="conf-vote", samples=5, limit=1)).rows[0]
    assert row["looped"] == 2 and row["voters"] == 3 and row["prediction"] == "0"
    assert [t["prediction"] for t in row["traces"]] == [None, "0", "0", None, "0"]


@pytest.mark.model
def test_fallback_notice_only_when_a_model_runs(monkeypatch, dataset, tmp_path, isolated_home):
    """The registry default (Marco-o1) is not downloaded: the embedded model
    answers and says so in one line, but a --resume with nothing left to
    answer runs no model and says nothing."""
    from chat_fakes import FakeBackend

    from marco_cli.commands import eval as command
    from marco_cli.reasoner import Reasoner

    monkeypatch.setattr(
        command,
        "Reasoner",
        lambda model, runtime, on_load=None: Reasoner(model, runtime, backend=FakeBackend(), on_load=on_load),
    )
    out = tmp_path / "r.jsonl"
    args = ["eval", str(dataset), "--modes", "cot", "--limit", "2", "--out", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.stderr
    notices = [line for line in first.stderr.splitlines() if "not downloaded" in line]
    assert len(notices) == 1 and len(notices[0]) <= 100 and "marco pull marco-o1" in notices[0]
    again = CliRunner().invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.stderr
    assert "not downloaded" not in again.stderr
