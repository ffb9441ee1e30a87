"""run_search as the rest of marco sees it: determinism, golden tree, anytime
stops, the final-answer rules, value span, events and handle hygiene."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from scripted_backend import ScriptedBackend

from marco_cli.core.settings import Action, Pick, SearchSettings, ValueSpan
from marco_cli.search import StoppedBy, events, run_search, tree_to_dict
from marco_cli.search.scoring import output_span, path_value

PROMPT = "Question: add two and three\n"
GOLDEN = Path(__file__).parent / "golden" / "search_tree.json"
GOLDEN_SETTINGS = SearchSettings(simulations=6, children=3, max_depth=4, max_tokens=120, reflection=True, seed=7)


class Collect:
    def __init__(self, backend: ScriptedBackend | None = None) -> None:
        self.events: list = []
        self.backend = backend
        self.live_after_iteration: list[tuple[int, int]] = []

    def on_event(self, event) -> None:
        self.events.append(event)
        if isinstance(event, events.IterationDone) and self.backend is not None:
            frontier = sum(1 for v in event.tree.walk() if not v.children and not v.terminal and v.depth > 0)
            self.live_after_iteration.append((self.backend.live, frontier))


def search(settings: SearchSettings, backend: ScriptedBackend | None = None, **kw):
    backend = backend or ScriptedBackend()
    return run_search(backend, backend.tokenize(PROMPT), settings, **kw), backend


# -- determinism and the golden tree -----------------------------------------------------


def test_same_seed_same_tree_and_answer():
    for settings in (GOLDEN_SETTINGS, GOLDEN_SETTINGS.with_(leaves_per_iteration=3, simulations=12)):
        a, _ = search(settings)
        b, _ = search(settings)
        assert tree_to_dict(a.root) == tree_to_dict(b.root)
        assert a.answer_text == b.answer_text and a.tokens == b.tokens


def test_different_seed_different_tree():
    a, _ = search(GOLDEN_SETTINGS)
    b, _ = search(GOLDEN_SETTINGS.with_(seed=8))
    assert tree_to_dict(a.root) != tree_to_dict(b.root)


def test_golden_tree():
    result, _ = search(GOLDEN_SETTINGS)
    tree = tree_to_dict(result.root)
    if os.environ.get("MARCO_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(tree, indent=1) + "\n")
    assert json.dumps(tree) == json.dumps(json.loads(GOLDEN.read_text()))


def test_tree_dict_is_json_ready():
    result, _ = search(GOLDEN_SETTINGS)
    again = json.loads(json.dumps(tree_to_dict(result.root)))
    assert again["id"] == 0 and again["children"]


# -- several leaves per iteration ----------------------------------------------------------


def test_virtual_loss_spreads_leaves_and_fills_batches():
    settings = SearchSettings(simulations=12, children=3, leaves_per_iteration=3, max_tokens=160, seed=3)
    result, backend = search(settings)
    assert result.stats.simulations == 12
    assert result.stats.iterations < 12  # several leaves per iteration
    assert max(backend.extend_calls) > settings.children  # bigger batches than one expansion
    expansions = [e for e in _events(settings) if isinstance(e, events.NodeExpanded)]
    assert len({e.parent_id for e in expansions}) == len(expansions)  # never the same leaf twice


def _events(settings: SearchSettings) -> list:
    collect = Collect()
    search(settings, observer=collect)
    return collect.events


# -- anytime --------------------------------------------------------------------------------


def test_should_stop_returns_best_answer_so_far():
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) >= 3

    result, backend = search(SearchSettings(simulations=50), should_stop=should_stop)
    assert result.stopped_by is StoppedBy.SHOULD_STOP
    assert result.stats.simulations < 50
    assert result.complete and result.answer_text.endswith("</Output>")
    assert result.value == pytest.approx(max(r.value for r in result.rollouts if r.node_id == result.path[-1].id))
    assert backend.live == 0


def test_budget_stops_the_search():
    ticks = iter(range(1000))
    result, backend = search(SearchSettings(simulations=50, budget=3.0), clock=lambda: float(next(ticks)))
    assert result.stopped_by is StoppedBy.BUDGET
    assert 1 <= result.stats.iterations < 50
    assert result.complete
    assert backend.live == 0


def test_keyboard_interrupt_mid_search_returns_best_completed_rollout():
    backend = ScriptedBackend(interrupt_at_call=6)
    result, _ = search(SearchSettings(simulations=20), backend)
    assert result.stopped_by is StoppedBy.INTERRUPTED
    assert result.complete and result.rollouts
    assert len(backend.extend_calls) == 6  # nothing generated after the interrupt
    assert result.tokens in {r.tokens for r in result.rollouts}
    assert backend.live == 0


def test_interrupt_before_any_rollout_gives_partial_text():
    backend = ScriptedBackend(interrupt_at_call=2)  # during the first rollouts
    result, _ = search(SearchSettings(simulations=5), backend)
    assert result.stopped_by is StoppedBy.INTERRUPTED
    assert not result.rollouts
    assert result.path and result.answer_text.startswith("<Thought>")
    assert backend.live == 0


def test_interrupt_at_first_call_gives_empty_result():
    result, backend = search(SearchSettings(simulations=5), ScriptedBackend(interrupt_at_call=1))
    assert result.stopped_by is StoppedBy.INTERRUPTED
    assert result.answer_text == "" and not result.complete and result.path == ()
    assert backend.live == 0


def test_interrupt_while_finishing_greedily():
    settings = SearchSettings(simulations=2, max_tokens=200, pick=Pick.MOST_VISITED)
    reference = search(settings)[1]
    assert reference.requests[-1].sampling.temperature == 0.0  # the last call is the greedy finish
    calls = len(reference.extend_calls)
    result, _ = search(settings, ScriptedBackend(interrupt_at_call=calls))
    assert result.stopped_by is StoppedBy.INTERRUPTED
    assert result.complete and result.tokens in {r.tokens for r in result.rollouts}


# -- final answer ---------------------------------------------------------------------------


def test_best_value_pick_returns_the_highest_rollout():
    result, _ = search(SearchSettings(simulations=8, pick=Pick.BEST_VALUE))
    best = max(result.rollouts, key=lambda r: r.value)
    assert result.value == best.value and result.tokens == best.tokens
    assert result.path[-1].id == best.node_id


def test_most_visited_pick_follows_visits_and_finishes_greedily():
    settings = SearchSettings(simulations=8, max_tokens=200, pick=Pick.MOST_VISITED)
    result, backend = search(settings)
    view = result.root
    for chosen in result.path:
        assert chosen.visits == max(c.visits for c in view.children)
        view = chosen
    assert not view.children  # a leaf
    assert result.answer_text.startswith("".join(v.text for v in result.path))
    assert result.answer_text.rstrip().endswith("</Output>")
    if not view.terminal:
        assert backend.requests[-1].sampling.temperature == 0.0
    sampled = [c for c in result.confidences if c is not None]
    assert result.value == pytest.approx(float(np.mean(sampled)))
    assert len(result.confidences) == len(result.tokens)


# -- value span -----------------------------------------------------------------------------


def test_output_span_finds_the_answer_tokens():
    backend = ScriptedBackend()
    tokens = backend.tokenize("<Thought>\nso we \n\n</Thought>\n<Output>five it </Output>")
    start, end = output_span(tokens, backend.detokenize)
    assert backend.detokenize(tokens[start:end]) == "five it "
    open_only = backend.tokenize("<Thought>\nso</Thought>\n<Output>five")
    s, e = output_span(open_only, backend.detokenize)
    assert backend.detokenize(open_only[s:e]) == "five"
    assert output_span(backend.tokenize("no tags here"), backend.detokenize) is None


def test_value_span_output_scores_only_the_answer():
    backend = ScriptedBackend()
    tokens = backend.tokenize("<Thought>\nso we </Thought>\n<Output>five it </Output>")
    confidences = [0.1] * len(tokens)
    start, end = output_span(tokens, backend.detokenize)
    confidences[start:end] = [0.9] * (end - start)
    assert path_value(tokens, confidences, ValueSpan.OUTPUT, backend.detokenize) == pytest.approx(0.9)
    assert path_value(tokens, confidences, ValueSpan.ROLLOUT, backend.detokenize) < 0.5
    no_tag = backend.tokenize("so we")
    assert path_value(no_tag, [0.4, 0.6], ValueSpan.OUTPUT, backend.detokenize) == pytest.approx(0.5)
    assert path_value(tokens, [None] * len(tokens), ValueSpan.ROLLOUT, backend.detokenize) == 0.0


def test_search_with_output_span():
    result, backend = search(SearchSettings(simulations=4, value_span=ValueSpan.OUTPUT))
    for rollout in result.rollouts:
        start, end = output_span(rollout.tokens, backend.detokenize)
        inside = [c for c in rollout.confidences[start:end] if c is not None]
        assert rollout.value == pytest.approx(float(np.mean(inside)))


# -- events and handles ---------------------------------------------------------------------


def test_events_arrive_in_a_sensible_order():
    collect = Collect()
    result, _ = search(SearchSettings(simulations=5, reflection=True, max_tokens=200), observer=collect)
    seen = collect.events
    assert isinstance(seen[0], events.NodeCreated) and seen[0].parent_id is None
    assert isinstance(seen[-1], events.SearchFinished) and seen[-1].result is result
    created: set[int] = set()
    scored: set[int] = set()
    for event in seen:
        if isinstance(event, events.NodeCreated):
            assert event.node_id == len(created)  # ids in creation order
            assert event.parent_id is None or event.parent_id in created
            created.add(event.node_id)
        elif isinstance(event, events.ReflectionInserted):
            assert event.node_id in created
        elif isinstance(event, events.NodeExpanded):
            assert set(event.child_ids) <= created
        elif isinstance(event, events.RolloutScored):
            assert event.node_id in created and 0.0 <= event.value <= 1.0
            scored.add(event.node_id)
        elif isinstance(event, events.Backpropagated):
            assert event.path_ids[0] == 0 and event.path_ids[-1] in scored
    done = [e for e in seen if isinstance(e, events.IterationDone)]
    assert [e.iteration for e in done] == list(range(1, result.stats.iterations + 1))
    assert done[-1].nodes == result.stats.nodes
    assert any(isinstance(e, events.ReflectionInserted) for e in seen)


def test_live_handles_are_exactly_the_open_frontier():
    backend = ScriptedBackend()
    collect = Collect(backend)
    search(SearchSettings(simulations=10, max_depth=3, max_tokens=150), backend, observer=collect)
    assert collect.live_after_iteration
    for live, frontier in collect.live_after_iteration:
        assert live == frontier
    assert backend.live == 0


def test_stats_are_counted():
    result, backend = search(SearchSettings(simulations=4, action=Action.MINI_32))
    stats = result.stats
    assert stats.tokens_generated == backend.stats.generated_tokens
    assert stats.tokens_evaluated == backend.stats.evaluated_tokens
    assert stats.rollouts == len(result.rollouts)
    assert stats.max_depth == max(v.depth for v in result.root.walk())
    assert stats.tokens_per_second >= 0


def test_interrupt_between_a_rollout_and_its_reflection_leaks_nothing():
    settings = SearchSettings(simulations=6, reflection=True, max_tokens=200)
    reference = search(settings)[1]
    calls, seen = 0, 0
    for size in reference.extend_calls:  # find the batch that continues rollouts after the phrase
        calls += 1
        batch = reference.requests[seen : seen + size]
        seen += size
        if any(r.forced and not r.keep for r in batch):
            break
    else:
        pytest.fail("no rollout reflected in the reference run")
    backend = ScriptedBackend(interrupt_at_call=calls)
    result, _ = search(settings, backend)
    assert result.stopped_by is StoppedBy.INTERRUPTED
    assert backend.live == 0
