"""MCTS behaviour on the scripted backend: tree invariants, limits, reflection."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from scripted_backend import ScriptedBackend

from marco_cli.backends.base import StopReason
from marco_cli.core.settings import Action, SearchSettings
from marco_cli.search import NodeView, run_search
from marco_cli.search.actions import REFLECTION_TEXT
from marco_cli.search.node import Node
from marco_cli.search.uct import select_child, uct_score

PROMPT = "Question: add two and three\n"


def search(settings: SearchSettings, backend: ScriptedBackend | None = None, **kw):
    backend = backend or ScriptedBackend()
    result = run_search(backend, backend.tokenize(PROMPT), settings, **kw)
    return result, backend


def nodes(view: NodeView) -> list[NodeView]:
    return list(view.walk())


def paths(view: NodeView, prefix: tuple[NodeView, ...] = ()) -> list[tuple[NodeView, ...]]:
    here = prefix + ((view,) if view.parent_id is not None else ())
    if not view.children:
        return [here]
    return [p for c in view.children for p in paths(c, here)]


def test_importing_search_pulls_in_no_ui_or_engine():
    code = (
        "import sys, marco_cli.search\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('rich', 'typer', 'llama_cpp')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- UCT ------------------------------------------------------------------------


def _parent_with(stats: list[tuple[int, float]]) -> Node:
    parent = Node(id=0, parent=None, depth=0)
    for i, (visits, total) in enumerate(stats, start=1):
        parent.children.append(Node(id=i, parent=parent, depth=1, visits=visits, total_value=total))
    parent.visits = sum(v for v, _ in stats)
    return parent


def test_uct_prefers_unvisited_children():
    parent = _parent_with([(5, 4.9), (0, 0.0), (3, 2.9)])
    assert select_child(parent, 1.41, np.random.default_rng(0)).id == 2


def test_uct_formula():
    parent = _parent_with([(4, 2.0), (1, 0.3)])
    child = parent.children[0]
    assert uct_score(child, 5, 1.41) == pytest.approx(0.5 + 1.41 * np.sqrt(np.log(5) / 4))
    # Exploration 0: pure exploitation picks the higher mean.
    assert select_child(parent, 0.0, np.random.default_rng(0)).id == 1
    # Large exploration favours the rarely visited child.
    assert select_child(parent, 10.0, np.random.default_rng(0)).id == 2


def test_uct_ties_broken_by_seeded_rng():
    picks = {select_child(_parent_with([(2, 1.0)] * 4), 1.0, np.random.default_rng(s)).id for s in range(20)}
    assert len(picks) > 1  # the rng decides, not list order
    again = [select_child(_parent_with([(2, 1.0)] * 4), 1.0, np.random.default_rng(7)).id for _ in range(3)]
    assert len(set(again)) == 1


# -- tree invariants ----------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        SearchSettings(simulations=10, max_tokens=120),
        SearchSettings(simulations=8, action=Action.MINI_32, reflection=True, max_tokens=150),
        SearchSettings(simulations=12, leaves_per_iteration=3, reflect_below=0.55, max_tokens=120),
    ],
    ids=["step", "mini32-reflection", "multi-leaf-dynamic"],
)
def test_visits_and_values_add_up(settings):
    result, backend = search(settings)
    for view in nodes(result.root):
        assert view.visits == sum(c.visits for c in view.children) + view.rollouts
        own = view.total_value - sum(c.total_value for c in view.children)
        assert -1e-9 <= own <= view.rollouts + 1e-9  # its own rollouts, each worth at most 1
        assert 0.0 <= view.mean_value <= 1.0
        assert view.step_confidence is None or 0.0 <= view.step_confidence <= 1.0
        assert all(c is None or 0.0 <= c <= 1.0 for c in view.confidences)
    assert result.root.rollouts == 0
    assert result.root.visits == sum(v.rollouts for v in nodes(result.root))
    assert result.stats.simulations == settings.simulations
    assert result.stats.nodes == len(nodes(result.root))
    assert [v.id for v in sorted(nodes(result.root), key=lambda v: v.id)] == list(range(result.stats.nodes))
    assert all(0.0 <= r.value <= 1.0 for r in result.rollouts)
    assert 0.0 <= result.value <= 1.0
    assert all(len(r.tokens) <= settings.max_tokens for r in result.rollouts)
    assert backend.live == 0  # every handle given back


def test_value_of_a_rollout_is_the_mean_confidence_of_its_path():
    result, _ = search(SearchSettings(simulations=4))
    for rollout in result.rollouts:
        sampled = [c for c in rollout.confidences if c is not None]
        assert rollout.value == pytest.approx(float(np.mean(sampled)))
    # A node's total is the sum of the rollout values that passed through it.
    view = result.root.children[0]
    assert view.total_value == pytest.approx(view.mean_value * view.visits)


def test_first_iteration_expands_root_into_k_batched_children_each_visited_once():
    result, backend = search(SearchSettings(simulations=1, children=3))
    assert backend.extend_calls[0] == 3  # the K siblings share one batch
    assert backend.extend_calls[1] == 3  # and so do their rollouts
    assert len(result.root.children) == 3
    assert [c.visits for c in result.root.children] == [1, 1, 1]
    assert result.root.visits == 3
    seeds = [r.sampling.seed for r in backend.requests[:3]]
    assert len(set(seeds)) == 3


def test_depth_limit_makes_rollout_only_leaves():
    result, _ = search(SearchSettings(simulations=14, max_depth=2, max_tokens=200))
    assert max(v.depth for v in nodes(result.root)) <= 2
    deep = [v for v in nodes(result.root) if v.depth == 2]
    assert deep and all(not v.children for v in deep)
    # Selected again, a depth-limited leaf gets another rollout instead of children.
    assert any(v.rollouts > 1 and not v.terminal for v in deep)


def test_context_end_is_terminal_and_never_crashes():
    backend = ScriptedBackend(n_ctx=len(ScriptedBackend().tokenize(PROMPT)) + 24)
    result, _ = search(SearchSettings(simulations=6, children=3, max_tokens=500), backend)
    stops = [v.stop for v in nodes(result.root)] + [r.stop for r in result.rollouts]
    assert StopReason.CONTEXT in stops
    for view in nodes(result.root):
        if view.stop is StopReason.CONTEXT:
            assert view.terminal and not view.children
    assert 0.0 <= result.value <= 1.0
    assert backend.live == 0


def test_answer_cap_bounds_every_path():
    result, _ = search(SearchSettings(simulations=6, max_tokens=20))
    for view in nodes(result.root):
        length = sum(len(n.tokens) for n in _path_to(result.root, view.id))
        assert length <= 20
        if length == 20:
            assert view.terminal
    assert len(result.tokens) <= 20


def _path_to(root: NodeView, node_id: int) -> list[NodeView]:
    for path in paths(root):
        for i, view in enumerate(path):
            if view.id == node_id:
                return list(path[: i + 1])
    return []


@pytest.mark.parametrize("action,size", [(Action.MINI_32, 32), (Action.MINI_64, 64)])
def test_mini_steps_are_exact_unless_they_ended(action, size):
    backend = ScriptedBackend(thought_words=60)  # long thoughts, so most mini-steps run full
    result, _ = search(SearchSettings(simulations=6, action=action, max_tokens=400), backend)
    step_requests = [r for r in backend.requests if r.keep and not r.forced]
    assert step_requests and all(r.max_tokens == size for r in step_requests)
    assert all(all(s.reason is StopReason.OUTPUT_END for s in r.stops) for r in step_requests)
    for view in nodes(result.root)[1:]:
        if view.stop is StopReason.LENGTH:
            assert view.n_tokens == size
        else:
            assert view.n_tokens <= size and view.stop in (StopReason.EOS, StopReason.OUTPUT_END)
    assert any(v.n_tokens == size for v in nodes(result.root)[1:])


def test_identical_siblings_are_merged_and_released():
    events = []
    backend = ScriptedBackend(ignore_seed=True)
    result, _ = search(SearchSettings(simulations=3, children=3), backend, observer=_Collect(events))
    for view in nodes(result.root):
        assert len(view.children) <= 1
    expanded = [e for e in events if type(e).__name__ == "NodeExpanded"]
    assert expanded and all(e.merged == 2 for e in expanded)
    assert backend.live == 0


class _Collect:
    def __init__(self, sink: list) -> None:
        self.sink = sink

    def on_event(self, event) -> None:
        self.sink.append(event)


# -- reflection ---------------------------------------------------------------------


def test_reflection_phrase_inserted_once_per_path():
    result, backend = search(SearchSettings(simulations=8, reflection=True, max_tokens=200))
    phrase = tuple(backend.tokenize(REFLECTION_TEXT, special=False))
    reflected = [v for v in nodes(result.root) if v.reflection]
    assert reflected
    for view in reflected:
        assert view.tokens[-len(phrase) :] == phrase  # the step ends where "</Thought>" was dropped
        assert view.stop is StopReason.THOUGHT_END and not view.terminal
        assert "</Thought>" not in view.text
        assert all(c is None for c in view.confidences[-len(phrase) :])  # forced, not sampled
    for path in paths(result.root):
        assert sum(v.reflection for v in path) <= 1
    for rollout in result.rollouts:
        text = backend.detokenize(rollout.tokens)
        assert text.count("Wait! Maybe I made some mistakes!") <= 1
        if "Wait!" in text:
            assert text.index("Wait!") < text.index("</Thought>")
    assert "Wait! Maybe I made some mistakes! I need to rethink from scratch." in result.answer_text


def test_reflection_inside_rollouts():
    # One simulation: the children's rollouts must reflect before ending the thought.
    result, backend = search(SearchSettings(simulations=1, reflection=True, max_tokens=200))
    for rollout in result.rollouts:
        text = backend.detokenize(rollout.tokens)
        if "</Thought>" in text:
            assert text.count("Wait! Maybe I made some mistakes!") == 1


def test_dynamic_reflection_adds_a_rethink_child_below_threshold():
    backend = ScriptedBackend(low_confidence=True)
    result, _ = search(SearchSettings(simulations=8, reflect_below=0.5, max_tokens=200), backend)
    phrase = tuple(backend.tokenize(REFLECTION_TEXT, special=False))
    rethink = [v for v in nodes(result.root) if v.reflection]
    assert rethink
    for view in rethink:
        assert view.tokens == phrase and view.step_confidence is None
    for path in paths(result.root):
        assert sum(v.reflection for v in path) <= 1
    # Root has no step of its own, so it never gets one.
    assert not any(c.reflection for c in result.root.children)


def test_no_dynamic_reflection_above_threshold():
    result, _ = search(SearchSettings(simulations=8, reflect_below=0.01))
    assert not any(v.reflection for v in nodes(result.root))


def test_each_rollout_says_when_it_was_scored():
    """Iteration, simulations and tokens so far: what a smaller or early-stopped
    search would have seen (benchmarks/tune_search.py replays them)."""
    result, _ = search(SearchSettings(simulations=8, children=2, max_tokens=200, early_stop=None))
    rollouts = result.rollouts
    assert [r.iteration for r in rollouts] == sorted(r.iteration for r in rollouts)
    assert rollouts[0].iteration == 1 and rollouts[-1].iteration == result.stats.iterations
    assert [r.simulations for r in rollouts] == sorted(r.simulations for r in rollouts)
    assert rollouts[-1].simulations == result.stats.simulations == 8
    tokens = [r.searched_tokens for r in rollouts]
    assert tokens == sorted(tokens) and tokens[0] > 0 and tokens[-1] <= result.stats.tokens_generated
    for earlier, later in itertools.pairwise(rollouts):
        if later.iteration > earlier.iteration:  # a new iteration generated more first
            assert later.searched_tokens > earlier.searched_tokens
