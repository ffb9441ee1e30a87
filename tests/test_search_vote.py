"""The search side of issue 12 on the scripted backend: the loop guard in the
search (a looped path's value loses everywhere), --pick vote and every pick
reported per search, and the early stop (fires, is deterministic per seed,
saves tokens)."""

from __future__ import annotations

import pytest
from scripted_backend import ScriptedBackend

from marco_cli.backends.base import StopReason
from marco_cli.core.settings import Pick, SearchSettings
from marco_cli.search import StoppedBy, run_search, tree_to_dict
from marco_cli.search.vote import tally

PROMPT = "Question: add two and three\n"
LOOPY = SearchSettings(simulations=8, max_tokens=300, seed=3, early_stop=None)


def search(settings: SearchSettings, **backend_options):
    backend = ScriptedBackend(**backend_options)
    return run_search(backend, backend.tokenize(PROMPT), settings), backend


# -- the loop guard --------------------------------------------------------------------


def test_without_the_guard_a_confident_loop_wins_on_value():
    """The failure the guard exists for (issue 12): loops are confident."""
    result, _ = search(LOOPY.with_(loop_guard=False, pick=Pick.BEST_VALUE), loop_rate=0.5)
    assert result.stop is StopReason.LENGTH and "again so we \nagain so we" in result.answer_text


@pytest.mark.parametrize("pick", list(Pick))
def test_with_the_guard_loops_stop_early_and_never_win(pick):
    result, backend = search(LOOPY.with_(pick=pick), loop_rate=0.5)
    looped = [r for r in result.rollouts if r.stop is StopReason.LOOP]
    normal = [r for r in result.rollouts if r.stop is not StopReason.LOOP]
    assert looped and normal
    # stopped long before the token cap, valued below every normal path
    assert all(len(r.tokens) < LOOPY.max_tokens for r in looped)
    assert max(r.value for r in looped) < min(r.value for r in normal)
    assert all(r.answer_key is None for r in looped)  # loops do not vote
    assert result.stop is not StopReason.LOOP and "again" not in result.answer_text
    for choice in result.picks:
        assert "again" not in choice.text
    assert all(req.loop_guard for req in backend.requests if req.max_tokens > 0)
    # every loop node in the tree is terminal
    for node in result.root.walk():
        if node.stop is StopReason.LOOP:
            assert node.terminal


def test_the_guard_saves_tokens():
    guarded, _ = search(LOOPY, loop_rate=0.5)
    unguarded, _ = search(LOOPY.with_(loop_guard=False), loop_rate=0.5)
    assert guarded.stats.tokens_generated < unguarded.stats.tokens_generated


def test_when_every_path_loops_the_answer_says_so():
    result, _ = search(LOOPY.with_(simulations=3, pick=Pick.BEST_VALUE), loop_rate=1.0)
    assert all(r.stop is StopReason.LOOP for r in result.rollouts)
    assert result.stop is StopReason.LOOP and result.value == 0.0


# -- every pick, and the vote ---------------------------------------------------------

AGREEING = dict(answers=("five ", "five ", "three "))


def test_every_pick_is_reported_and_the_active_one_is_the_answer():
    for pick in Pick:
        result, _ = search(SearchSettings(simulations=8, seed=2, pick=pick, early_stop=None), **AGREEING)
        assert [c.pick for c in result.picks] == list(Pick)
        active = result.pick(pick)
        assert active.text == result.answer_text and active.value == pytest.approx(result.value)
        assert not active.estimated


def test_vote_answers_with_the_best_rollout_of_the_heaviest_group():
    result, _ = search(SearchSettings(simulations=10, seed=5, pick=Pick.VOTE, early_stop=None), **AGREEING)
    weights: dict[str, float] = {}
    for r in result.rollouts:
        weights[r.answer_key] = weights.get(r.answer_key, 0.0) + r.value
    heaviest = max(weights, key=weights.get)
    best = max((r for r in result.rollouts if r.answer_key == heaviest), key=lambda r: r.value)
    assert result.pick(Pick.VOTE).answer_key == heaviest
    assert result.value == pytest.approx(best.value) and result.tokens == best.tokens
    assert result.vote.answer_key == heaviest and result.vote.answers == len(weights)
    assert result.vote.share == pytest.approx(weights[heaviest] / sum(weights.values()))


def test_vote_can_overrule_the_single_best_value():
    """Search seeds until best-value and vote disagree: then vote holds the majority."""
    for seed in range(40):
        result, _ = search(SearchSettings(simulations=6, seed=seed, pick=Pick.VOTE, early_stop=None), **AGREEING)
        best, vote = result.pick(Pick.BEST_VALUE), result.pick(Pick.VOTE)
        if best.answer_key != vote.answer_key:
            t = tally(list(result.rollouts))
            assert t.leader.key == vote.answer_key and best.value > vote.value
            return
    pytest.fail("no seed in 40 made best-value and vote disagree")


def test_most_visited_is_an_estimate_only_when_it_would_have_generated():
    result, _ = search(SearchSettings(simulations=6, seed=1, pick=Pick.VOTE, early_stop=None))
    mv = result.pick(Pick.MOST_VISITED)
    leaf = next(v for v in result.root.walk() if v.id == mv.node_id)
    assert mv.estimated == (not leaf.terminal)
    assert result.stats.finish_tokens == 0  # vote never generates after the search
    mv_run, _ = search(SearchSettings(simulations=6, seed=1, pick=Pick.MOST_VISITED, early_stop=None))
    assert not mv_run.pick(Pick.MOST_VISITED).estimated
    assert mv_run.stats.finish_tokens >= 0


# -- early stop ----------------------------------------------------------------------------

EARLY = SearchSettings(simulations=16, children=3, seed=4, pick=Pick.VOTE, early_stop=0.75, early_stop_min=3)


def test_early_stop_fires_when_the_rollouts_agree_and_saves_tokens():
    stopped, _ = search(EARLY, answers=("five ",))
    full, _ = search(EARLY.with_(early_stop=None), answers=("five ",))
    assert stopped.stopped_by is StoppedBy.EARLY_STOP
    assert stopped.stats.simulations < full.stats.simulations == 16
    assert stopped.stats.tokens_generated < full.stats.tokens_generated
    assert stopped.vote.voters >= 3 and stopped.vote.share >= 0.75
    assert "five" in stopped.answer_text


def test_early_stop_is_deterministic_per_seed():
    a, _ = search(EARLY.with_(early_stop=0.5), **AGREEING)
    b, _ = search(EARLY.with_(early_stop=0.5), **AGREEING)
    assert a.stopped_by is b.stopped_by is StoppedBy.EARLY_STOP
    assert tree_to_dict(a.root) == tree_to_dict(b.root)
    assert a.stats.simulations == b.stats.simulations and a.answer_text == b.answer_text


def test_early_stop_waits_for_the_minimum_and_the_share():
    # answers split: the leader never holds 99 % of the mass
    split, _ = search(EARLY.with_(early_stop=0.99), answers=("five ", "three "))
    assert split.stopped_by is StoppedBy.COMPLETED
    # all agree, but 1000 voters are never reached
    patient, _ = search(EARLY.with_(early_stop_min=1000), answers=("five ",))
    assert patient.stopped_by is StoppedBy.COMPLETED
    off, _ = search(EARLY.with_(early_stop=0), answers=("five ",))
    assert off.stopped_by is StoppedBy.COMPLETED


def test_early_stop_then_most_visited_still_finishes_its_path():
    result, _ = search(EARLY.with_(pick=Pick.MOST_VISITED), answers=("five ",))
    assert result.stopped_by is StoppedBy.EARLY_STOP and result.complete


# -- what the saved tree keeps ---------------------------------------------------------------


def test_saved_tree_holds_the_vote_the_picks_and_the_early_stop(tmp_path):
    import json

    from marco_cli.treefile.io import load_tree, options_dict, save_tree

    result, _ = search(EARLY, answers=("five ",))
    path = save_tree(tmp_path / "t.json", result, question="q", model="scripted", options=options_dict(EARLY))
    data = json.loads(path.read_text())
    assert data["stopped_by"] == "early_stop" and data["options"]["early_stop"] == 0.75
    assert data["vote"]["answer"] == "five" and data["vote"]["voters"] >= 3
    assert [p["pick"] for p in data["picks"]] == ["most-visited", "best-value", "vote"]
    assert data["answer"]["stop"] == "output_end"
    assert all(r["answer"] == "five" for r in data["rollouts"])
    loaded = load_tree(path).result()
    assert loaded.stopped_by is StoppedBy.EARLY_STOP and loaded.stop is StopReason.OUTPUT_END
    assert loaded.stats.finish_tokens == result.stats.finish_tokens and loaded.stats.rollouts == result.stats.rollouts


def test_a_tree_saved_before_these_fields_still_loads(tmp_path):
    import json

    from marco_cli.treefile.io import load_tree, options_dict, save_tree

    result, _ = search(LOOPY, loop_rate=0.5)
    path = save_tree(tmp_path / "t.json", result, question="q", model="scripted", options=options_dict(LOOPY))
    data = json.loads(path.read_text())
    assert any(r["stop"] == "loop" for r in data["rollouts"])
    for key in ("vote", "picks"):
        del data[key]
    del data["stats"]["finish_tokens"], data["answer"]["stop"]
    for r in data["rollouts"]:
        del r["answer"]
    path.write_text(json.dumps(data))
    loaded = load_tree(path).result()
    assert loaded.stats.finish_tokens == 0 and loaded.stop is None


def test_the_summary_panel_shows_the_early_stop_and_the_vote():
    from rich.console import Console

    from marco_cli.ui.summary import render_summary

    result, _ = search(EARLY, answers=("five ",))
    console = Console(width=100, record=True, color_system=None)
    console.print(render_summary(result, simulations=EARLY.simulations))
    text = console.export_text()
    assert f"{result.stats.simulations}/16 (early stop: the rollouts agreed)" in text
    assert f"five · 100% of the value of {result.vote.voters} rollouts (1 answer)" in text


def test_replay_shows_the_vote_and_a_bad_vote_is_one_line(tmp_path):
    import json

    from typer.testing import CliRunner

    from marco_cli.cli import app
    from marco_cli.treefile.io import load_tree, options_dict, save_tree

    result, _ = search(EARLY, answers=("five ",))
    path = save_tree(tmp_path / "t.json", result, question="q", model="scripted", options=options_dict(EARLY))
    assert load_tree(path).result().vote == result.vote
    replayed = CliRunner().invoke(app, ["replay", str(path)])
    assert replayed.exit_code == 0, replayed.stderr
    assert "early stop: the rollouts agreed" in replayed.stdout + replayed.stderr
    assert "five · 100% of the value" in replayed.stdout + replayed.stderr
    data = json.loads(path.read_text())
    data["vote"]["share"] = "most"
    path.write_text(json.dumps(data))
    broken = CliRunner().invoke(app, ["replay", str(path)])
    assert broken.exit_code == 2 and "vote: 'share' should be a number" in broken.stderr
    assert "Traceback" not in broken.stderr
