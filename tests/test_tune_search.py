"""benchmarks/tune_search.py: smaller budgets and early stops replayed from
one recorded search, as the search itself would have answered."""

from __future__ import annotations

import json

from benchmarks import tune_search


def rollout(iteration, simulations, tokens, key, value, stop="eos"):
    return {
        "prediction": key,
        "key": key,
        "value": value,
        "stop": stop,
        "tokens": 50,
        "iteration": iteration,
        "simulations": simulations,
        "searched_tokens": tokens,
    }


def row(q, reference, rollouts, stopped_by="completed"):
    return {
        "question_id": f"math:{q}",
        "question": f"question {q}",
        "sample": 0,
        "correct": False,
        "tokens": 1,
        "seconds": 1.0,
        "settings": "abc",
        "mode": "mcts-step",
        "reference": reference,
        "stopped_by": stopped_by,
        "rollouts": rollouts,
    }


# Question 1: the first iteration's two rollouts agree on 7 (wrong); the
# second and third bring 5 (right), which wins the vote at 4 simulations.
Q1 = row(
    1,
    "5",
    [
        rollout(1, 1, 100, "7", 0.6),
        rollout(1, 1, 100, "7", 0.6),
        rollout(2, 3, 250, "5", 0.9),
        rollout(2, 3, 250, "5", 0.8),
        rollout(3, 4, 320, "5", 0.7),
    ],
)
# Question 2: right from the start, one looped rollout that must never win.
Q2 = row(
    2,
    "3",
    [
        rollout(1, 1, 80, "3", 0.7),
        rollout(1, 1, 80, None, 0.0, stop="loop"),
        rollout(2, 3, 200, "3", 0.75),
        rollout(3, 4, 260, "4", 0.99),
    ],
)


def write(tmp_path, rows, name="r.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def records(tmp_path):
    return tune_search.read_records([write(tmp_path, [Q1, Q2])], "mcts-step")


def test_a_smaller_budget_sees_the_first_iterations_only(tmp_path):
    q1, q2 = records(tmp_path)
    first = tune_search.replay(q1, budget=1, share=None, minimum=3)
    assert (first.vote_right, first.tokens) == (False, 100)  # only the two 7s
    for budget in (3, 4):  # 5 now holds most of the value
        assert tune_search.replay(q1, budget, None, 3).vote_right
    assert tune_search.replay(q1, 2, None, 3).tokens == 100  # a budget inside an iteration stops before it
    whole = tune_search.replay(q2, 4, None, 3)
    assert whole.vote_right and not whole.best_right and whole.tokens == 260  # best-value takes the lone 0.99


def test_the_early_stop_fires_between_iterations_as_the_search_checks(tmp_path):
    q1, q2 = records(tmp_path)
    # After iteration 1 only two voters: a minimum of 2 lets 7 win at once, 3 does not.
    hasty = tune_search.replay(q1, 4, share=0.75, minimum=2)
    assert hasty.stopped_early and not hasty.vote_right and hasty.tokens == 100
    patient = tune_search.replay(q1, 4, share=0.75, minimum=3)
    assert not patient.stopped_early and patient.vote_right and patient.tokens == 320
    # Question 2: after iteration 2 the answer 3 holds all the value of 2 voters (the loop abstains).
    stop = tune_search.replay(q2, 4, share=0.9, minimum=2)
    assert stop.stopped_early and stop.vote_right and stop.best_right and stop.tokens == 200


def test_the_table_and_one_line_errors(tmp_path, capsys):
    path = write(tmp_path, [Q1, Q2])
    assert tune_search.main([str(path), "--shares", "0.75", "--min", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 questions of mcts-step\n")
    assert "| 4 | off | 100.0 |" in out and "| 4 | 0.75 after 2 | 50.0 |" in out
    early = write(tmp_path, [row(3, "1", [rollout(1, 1, 10, "1", 0.9)], stopped_by="early_stop")], "e.jsonl")
    assert tune_search.main([str(early)]) == 1
    assert "the search stopped by early_stop" in capsys.readouterr().err
    old = dict(Q1, rollouts=[{"prediction": "5", "value": 0.9, "stop": "eos", "tokens": 3}])
    assert tune_search.main([str(write(tmp_path, [old], "o.jsonl"))]) == 1
    assert "do not say when they were scored" in capsys.readouterr().err
    assert tune_search.main([str(path), "--shares", "lots"]) == 1
    assert capsys.readouterr().err == "tune_search: error: --shares must be numbers, got 'lots'\n"
    assert tune_search.main([str(tmp_path / "missing.jsonl")]) == 1


def test_the_replay_answers_as_the_search_itself_would_have():
    """One recorded search (early stop off, 10 simulations) replayed at smaller
    budgets and with early stops gives the answers and tokens of real searches
    run with those settings (same seed; one leaf per iteration here)."""
    from scripted_backend import ScriptedBackend

    from marco_cli.core.settings import Pick, SearchSettings
    from marco_cli.search import StoppedBy, run_search

    base = SearchSettings(simulations=10, children=2, max_tokens=200, seed=5, pick=Pick.VOTE, early_stop=None)

    def run(settings):
        backend = ScriptedBackend(answers=("five ", "five ", "three "))
        return run_search(backend, backend.tokenize("Question: add two and three\n"), settings)

    full = run(base)
    keys = tuple(r.answer_key for r in full.rollouts)  # the vote key stands for the extracted answer
    fired, winners = 0, set()
    for budget in (1, 2, 5, 10):
        for share in (None, 0.6, 0.75):
            real = run(base.with_(simulations=budget, early_stop=share, early_stop_min=3))
            assert real.vote is not None
            winners.add(real.vote.answer_key)
            for reference in ("five", "three"):  # right for exactly the answer the real search chose
                replayed = tune_search.replay(
                    tune_search.Recorded("q", reference, full.rollouts, keys), budget, share, 3
                )
                assert replayed.vote_right == (real.vote.answer_key == reference)
                assert replayed.stopped_early == (real.stopped_by is StoppedBy.EARLY_STOP)
                assert replayed.tokens == real.stats.tokens_generated
            fired += replayed.stopped_early
    assert fired and winners == {"five", "three"}  # both paths compared: early stops, and either answer winning
