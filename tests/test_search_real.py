"""A small search on the real SmolLM2-135M through llama.cpp (the embedded test
model): the search must hold its invariants on a real backend too."""

from __future__ import annotations

import pytest

from marco_cli.backends.base import StopReason
from marco_cli.core.settings import REFLECTION_PHRASE, Action, RuntimeSettings, SearchSettings
from marco_cli.search import StoppedBy, run_search, tree_to_dict

pytestmark = pytest.mark.model

# Skips only until the llama.cpp backend is merged next to the search.
LlamaBackend = pytest.importorskip("marco_cli.backends.llama").LlamaBackend

SYSTEM = (
    "You are a careful assistant. Think step by step inside <Thought> and </Thought>, "
    "then give the final answer inside <Output> and </Output>."
)
QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
SETTINGS = SearchSettings(simulations=4, children=2, action=Action.MINI_32, max_tokens=96, seed=11)


@pytest.fixture(scope="module")
def backend(smol_gguf):
    llama = LlamaBackend.load(smol_gguf, RuntimeSettings(n_ctx=4096), name="smollm2-135m")
    yield llama
    llama.close()


@pytest.fixture(scope="module")
def prompt(backend) -> list[int]:
    # ChatML, SmolLM2's own template, asking for the Thought/Output shape.
    text = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    return backend.tokenize(text, special=True)


def _check_tree(result, settings: SearchSettings) -> None:
    views = list(result.root.walk())
    for view in views:
        assert view.visits == sum(c.visits for c in view.children) + view.rollouts
        assert 0.0 <= view.mean_value <= 1.0
        assert all(c is None or 0.0 <= c <= 1.0 for c in view.confidences)
        if view.depth > 0 and not view.reflection:
            size = settings.action.mini_tokens
            if view.stop is StopReason.LENGTH:
                assert view.n_tokens == size
            else:
                assert view.n_tokens <= size
                assert view.stop in (StopReason.EOS, StopReason.OUTPUT_END, StopReason.CONTEXT)
    assert all(0.0 <= r.value <= 1.0 for r in result.rollouts)
    assert all(len(r.tokens) <= settings.max_tokens for r in result.rollouts)
    assert 0.0 <= result.value <= 1.0


@pytest.fixture(scope="module")
def first(backend, prompt):
    return run_search(backend, prompt, SETTINGS)


def test_small_search_completes_with_sound_tree(first):
    result = first
    assert result.stopped_by is StoppedBy.COMPLETED
    assert result.answer_text.strip()
    assert result.stats.simulations == SETTINGS.simulations
    assert result.stats.tokens_generated > 0
    assert len(result.root.children) >= 1
    _check_tree(result, SETTINGS)


def test_same_seed_same_answer(backend, prompt, first):
    second = run_search(backend, prompt, SETTINGS)
    assert first.answer_text == second.answer_text
    assert tree_to_dict(first.root, digits=4) == tree_to_dict(second.root, digits=4)


def test_reflection_phrase_appears_in_reflected_paths(backend, prompt):
    # reflect_below=1.0: every sampled step is "unsure", so rethink children exist
    # whatever the small model writes; v1 reflection fires if it closes a thought.
    settings = SETTINGS.with_(reflection=True, reflect_below=1.0)
    result = run_search(backend, prompt, settings)
    reflected = [v for v in result.root.walk() if v.reflection]
    assert reflected
    for view in reflected:
        assert REFLECTION_PHRASE in view.text
    for rollout in result.rollouts:
        assert backend.detokenize(rollout.tokens).count(REFLECTION_PHRASE) <= 1
    _check_tree(result, settings)


def test_a_watched_search_reports_tokens_while_they_are_sampled(backend, prompt):
    # The live counter moves during a phase: TokensGenerated comes before the
    # first child exists, and watching changes nothing in the tree.
    from marco_cli.search.events import NodeCreated, TokensGenerated

    seen = []

    class Watch:
        def on_event(self, event):
            seen.append(event)

    watched = run_search(backend, prompt, SETTINGS, observer=Watch())
    plain = run_search(backend, prompt, SETTINGS)
    first_child = next(i for i, e in enumerate(seen) if isinstance(e, NodeCreated) and e.parent_id is not None)
    progress = [e for e in seen[:first_child] if isinstance(e, TokensGenerated)]
    assert progress and progress[0].in_flight > 0
    assert [e.in_flight for e in progress] == sorted(e.in_flight for e in progress)
    assert tree_to_dict(watched.root) == tree_to_dict(plain.root)
