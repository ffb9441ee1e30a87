"""marco against llama.cpp's own ``llama-server`` (the engine people scale out
to), built from the llama.cpp of the installed llama-cpp-python and run as a
real process on 127.0.0.1 with the embedded SmolLM2 (tests/llama_server.py).

CI runs these (never skipped: ``.ci/run`` sets MARCO_CI and the binary is
built if it is not cached); a local run without the binary skips them.
Tiny settings: the machine is shared."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from child_env import MARCO, marco_env, run_marco
from llama_server import LlamaServer
from typer.testing import CliRunner

from marco_cli.cli import app
from marco_cli.core.settings import GenerationSettings, Mode, RuntimeSettings
from marco_cli.models.registry import load_registry, parse_registry, resolve
from marco_cli.reasoner import Reasoner
from marco_cli.treefile.check import load_tree

pytestmark = pytest.mark.model

QUESTION = "What is 17 + 25?"
LONG_QUESTION = "Explain step by step how a rainbow forms."  # a long chain of thought (150 tokens)
# A search small enough for a shared 2-core box; --threads is the local engine's.
SEARCH = ["--mode", "mcts", "--simulations", "3", "--children", "2", "--max-tokens", "48", "--seed", "3"]


@pytest.fixture(scope="module")
def server(llama_server_binary, smol_gguf, tmp_path_factory):
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    srv = LlamaServer(llama_server_binary, smol_gguf, log)
    yield srv
    srv.stop()


@pytest.fixture()
def registry_file(server, tmp_path) -> Path:
    """A registry whose entry 'remote-tiny' is the embedded model on the server."""
    path = tmp_path / "models.toml"
    path.write_text(
        f"""
default = "remote-tiny"

[models.remote-tiny]
base_url = "{server.url}"
concurrency = 2
stop = ["<|im_end|>", "<|endoftext|>"]
""",
        encoding="utf-8",
    )
    return path


# -- 1. the same llama.cpp: a chain of thought is the same, token for token ----


def test_chain_of_thought_is_token_exact_against_the_local_engine(server):
    registry = load_registry()
    local = Reasoner(resolve(registry, "tiny"), RuntimeSettings(n_threads=1))
    remote_registry = parse_registry(
        f'[models.r]\nbase_url = "{server.url}"\nstop = ["<|im_end|>", "<|endoftext|>"]\n', Path("m.toml")
    )
    remote = Reasoner(resolve(remote_registry, "r"))
    generation = GenerationSettings(max_tokens=150, temperature=0.0)
    try:
        here = local.ask(LONG_QUESTION, mode=Mode.COT, generation=generation)
        there = remote.ask(LONG_QUESTION, mode=Mode.COT, generation=generation)
        again = remote.ask(LONG_QUESTION, mode=Mode.COT, generation=generation)  # the same prompt, again
    finally:
        local.close()
        remote.close()
    assert here.prompt_tokens == there.prompt_tokens
    assert len(here.tokens) > 20
    assert there.tokens == here.tokens and there.text == here.text
    worst = max(abs(a - b) for a, b in zip(here.confidences, there.confidences))
    assert worst < 1e-6, worst
    # cache_prompt is off: asking again gives the same values, not cache-dependent ones
    assert again.tokens == there.tokens and again.confidences == there.confidences


# -- 2. --backend without -m: the server says what it runs ----------------------


def test_backend_without_a_model_uses_what_the_server_runs(server):
    result = run_marco("ask", "--backend", server.url, "--mode", "cot", "--max-tokens", "8", "--json", QUESTION)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "smollm2-135m:Q4_1"  # never the registry default it did not use
    # llama-server's id is the model path as given (-m) or its file name, by version
    assert result.stderr.startswith(f"marco: {server.url} runs '") and len(result.stderr.splitlines()) == 1
    assert "SmolLM2-135M-Instruct.Q4_1.gguf': using smollm2-135m's prompt format" in result.stderr
    local = CliRunner().invoke(
        app, ["ask", "-m", "tiny", "--mode", "cot", "--max-tokens", "8", "--json", "--threads", "1", QUESTION]
    )
    assert data["tokens"]["prompt"] == json.loads(local.stdout)["tokens"]["prompt"]  # its prompt format


# -- MCTS, --save-tree, chat, translate, eval through the server ------------


def test_a_search_through_the_server_saves_its_tree(server, tmp_path):
    tree = tmp_path / "tree.json"
    result = run_marco(
        "ask", "-m", "tiny", "--backend", server.url, *SEARCH, "--json", "--save-tree", str(tree), QUESTION
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["search"]["simulations"] == 3 and data["search"]["stopped_by"] == "completed"
    assert 0.0 < data["search"]["value"] <= 1.0
    saved = load_tree(tree)
    # the saved tree is the searched one (identical siblings merge, so at 0.6 a tree may be small)
    assert saved.data["stopped_by"] == "completed" and len(list(saved.root.walk())) == data["search"]["nodes"] >= 2
    assert saved.model.startswith("smollm2-135m")


def test_chat_through_the_server(registry_file, tmp_path):
    saved = tmp_path / "chat.json"
    result = run_marco(
        "chat",
        "--models",
        str(registry_file),
        "--mode",
        "cot",
        "--max-tokens",
        "16",
        "--save",
        str(saved),
        input="What is 2+2?\nAnd 3+3?\n",
    )
    assert result.returncode == 0, result.stderr
    turns = json.loads(saved.read_text(encoding="utf-8"))["turns"]
    assert [t["user"] for t in turns] == ["What is 2+2?", "And 3+3?"]
    assert all("error" not in t for t in turns)


def test_translate_through_the_server(registry_file):
    result = run_marco(
        "translate",
        "--models",
        str(registry_file),
        "--to",
        "fr",
        "--max-tokens",
        "16",
        "--json",
        input="Good morning.\n\nSee you later.\n",
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in rows] == ["Good morning.", "", "See you later."]
    assert rows[0]["translation"] and rows[2]["translation"] and all("error" not in r for r in rows)


def test_eval_through_the_server(registry_file, tmp_path):
    data, out = tmp_path / "tiny.tsv", tmp_path / "results.jsonl"
    data.write_text("What is 2 plus 2?\t4\nTom has 3 apples and buys 4 more. How many?\t7\n", encoding="utf-8")
    result = run_marco(
        "eval",
        str(data),
        "--models",
        str(registry_file),
        "--modes",
        "cot,mcts-step",
        "--max-tokens",
        "32",
        "--simulations",
        "2",
        "--children",
        "2",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["question_id"], r["mode"]) for r in rows] == [
        ("tiny:1", "cot"),
        ("tiny:1", "mcts-step"),
        ("tiny:2", "cot"),
        ("tiny:2", "mcts-step"),
    ]
    assert all(r["model"].startswith("remote-tiny") and "error" not in r for r in rows)


# -- 3. anytime: the server dies mid-search ----------------------------------


@pytest.mark.parametrize("how", ["kill -9", "shutdown (SIGTERM)"])
def test_a_server_dying_mid_search_leaves_the_best_answer_and_the_tree(llama_server_binary, smol_gguf, tmp_path, how):
    doomed = LlamaServer(llama_server_binary, smol_gguf, tmp_path / "doomed.log")
    tree = tmp_path / "tree.json"
    try:
        # long answers, far more simulations than can run before the end (a
        # short question's tree is soon all finished paths and completes)
        proc = subprocess.Popen(
            [
                *MARCO,
                "ask",
                "-m",
                "tiny",
                "--backend",
                doomed.url,
                "--mode",
                "mcts",
                "--simulations",
                "200",
                "--children",
                "2",
                "--early-stop",
                "0",
                "--max-tokens",
                "256",
                "--json",
                "--save-tree",
                str(tree),
                LONG_QUESTION,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=marco_env(),
        )
        give_up = time.monotonic() + 600  # a hang guard, not a speed check
        while doomed.metric("tokens_predicted_total") < 60:  # some rollouts are done
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < give_up, "marco never got going"
            time.sleep(0.1)
        if how == "kill -9":
            doomed.kill()
        else:
            doomed.proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        doomed.stop()
    assert proc.returncode == 1, (err, out[-300:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"marco: error: {doomed.url}"), err
    assert "of 200 simulations with its best answer so far" in lines[0]
    data = json.loads(out)
    assert data["search"]["stopped_by"] == "backend_failed" and data["search"]["error"]
    assert 0 < data["search"]["simulations"] < 200 and data["answer"] is not None
    saved = load_tree(tree)
    assert saved.data["stopped_by"] == "backend_failed" and saved.data["error"] == data["search"]["error"]
    assert len(list(saved.root.walk())) > 1
