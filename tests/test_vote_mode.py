"""``--mode vote``: sampled chains of thought in one batch, grouped by final
answer and weighted by their eq. 2 value (the held-out table's conf-vote, for
users). Logic on the scripted backend; end to end on the embedded model."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from scripted_backend import ScriptedBackend

from marco_cli.backends.base import StopReason
from marco_cli.core.settings import Mode, SearchSettings
from marco_cli.models.registry import parse_registry, resolve
from marco_cli.reasoner import Reasoner

REGISTRY = '[models.scripted]\npath = "/nowhere/scripted.gguf"\nreasoning = "marco"\n'
QUESTION = "Question: add two and three"


def ask(settings: SearchSettings, **backend_options):
    backend = ScriptedBackend(**backend_options)
    reasoner = Reasoner(resolve(parse_registry(REGISTRY, Path("m.toml")), "scripted"), backend=backend)
    return reasoner.ask(QUESTION, mode=Mode.VOTE, search=settings), backend


def leader(vote: dict) -> str | None:
    """The heaviest group, recomputed from what the answer reports."""
    weight: dict[str, float] = defaultdict(float)
    for key, value in zip(vote["keys"], vote["values"]):
        if key is not None:
            weight[key] += value
    return max(weight, key=weight.get) if weight else None


def test_the_chains_are_one_batch_and_the_heaviest_answer_wins():
    answer, backend = ask(SearchSettings(samples=7, seed=2, max_tokens=120), answers=("five ", "five ", "three "))
    vote = answer.extra["vote"]
    assert backend.extend_calls == [7]  # one batch of 7 rows
    assert [r.sampling.seed for r in backend.requests] == list(range(2, 9))  # sample i: seed + i
    assert answer.mode is Mode.VOTE and vote["samples"] == 7 and len(set(vote["keys"])) > 1  # the chains disagreed
    assert vote["answer"] == leader(vote)
    chosen = vote["chosen"]
    assert vote["keys"][chosen] == vote["answer"]
    # the best chain of the winning group, not just any
    assert vote["values"][chosen] == max(v for k, v in zip(vote["keys"], vote["values"]) if k == vote["answer"])
    assert vote["answer"] in answer.answer
    assert answer.generated_tokens == backend.stats.generated_tokens > len(answer.tokens)  # every chain counted
    assert answer.to_json()["vote"] == vote


def test_a_seed_gives_one_vote_and_another_seed_may_not():
    settings = SearchSettings(samples=5, seed=11, max_tokens=120)
    first, _ = ask(settings, answers=("five ", "three "))
    again, _ = ask(settings, answers=("five ", "three "))
    assert first.text == again.text and first.extra == again.extra
    keys = {tuple(ask(settings.with_(seed=s), answers=("five ", "three "))[0].extra["vote"]["keys"]) for s in range(4)}
    assert len(keys) > 1


def test_looped_chains_are_worth_nothing_and_never_vote():
    answer, _ = ask(SearchSettings(samples=6, seed=3, max_tokens=300), loop_rate=0.5, answers=("five ",))
    vote = answer.extra["vote"]
    looped = [i for i, k in enumerate(vote["keys"]) if k is None]
    assert looped, "the scripted backend looped some chains"
    assert all(vote["values"][i] == 0.0 for i in looped)
    assert answer.stop is not StopReason.LOOP and vote["answer"] == "five"
    assert vote["voters"] == 6 - len(looped)


def test_no_answer_anywhere_falls_back_to_the_most_confident_chain():
    answer, _ = ask(SearchSettings(samples=3, seed=1, max_tokens=300), loop_rate=1.0)
    vote = answer.extra["vote"]
    assert vote["answer"] is None and vote["voters"] == 0 and vote["chosen"] == 0  # all worth 0: the first
    assert answer.stop is StopReason.LOOP


@pytest.mark.model
def test_marco_ask_mode_vote_end_to_end(smol_gguf):
    """The real llama.cpp: piped, the answer only on stdout; --json reports the
    vote; the same seed gives the same vote; a bad --samples is one line."""
    base = [sys.executable, "-m", "marco_cli", "ask", "-m", "tiny", "--mode", "vote", "--threads", "1"]
    args = [*base, "--samples", "3", "--max-tokens", "48", "--seed", "4"]
    plain = subprocess.run([*args, "What is 2+3?"], capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() and "vote" not in plain.stderr  # nothing drawn on a piped stderr
    first = subprocess.run([*args, "--json", "What is 2+3?"], capture_output=True, text=True, timeout=300)
    data = json.loads(first.stdout)
    vote = data["vote"]
    assert data["mode"] == "vote" and vote["samples"] == 3 and len(vote["values"]) == 3
    assert data["answer"].strip() == plain.stdout.strip()
    assert vote["answer"] == leader(vote) and data["tokens"]["generated"] >= 3
    again = subprocess.run([*args, "--json", "What is 2+3?"], capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout)["vote"] == vote
    bad = subprocess.run([*base, "--samples", "0", "x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip() == "marco: error: --samples must be > 0, got 0"


@pytest.mark.model
def test_chat_and_translate_vote_too(smol_gguf):
    base = [sys.executable, "-m", "marco_cli"]
    script = "/mode vote\n/set samples 2\n/set children 5\nWhat is 2+2?\n/show\n"
    chat = subprocess.run(
        [*base, "chat", "-m", "tiny", "--threads", "1", "--max-tokens", "32"],
        input=script,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip()  # the answer
    assert "mode: vote" in chat.stderr and "children: 5 (not used in vote mode)" in chat.stderr
    shown = dict(line.split(None, 1) for line in chat.stderr.splitlines() if line[:1].isalpha() and " " in line)
    assert shown.get("samples", "").strip() == "2" and "simulations" not in shown  # /show: the vote's own keys
    translated = subprocess.run(
        [*base, "translate", "-m", "tiny", "--threads", "1", "--mode", "vote", "--samples", "2", "--to", "en"],
        input="C'est la vie\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert translated.returncode == 0, translated.stderr
    assert len(translated.stdout.splitlines()) == 1 and translated.stdout.strip()
