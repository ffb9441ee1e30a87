"""`marco ask` end to end on the real embedded model, and every error case of
the foundation issue: one line on stderr, the right exit code, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from child_env import MARCO, marco_env
from typer.testing import CliRunner

from marco_cli.cli import app

FAST = ["-m", "tiny", "--mode", "cot", "--max-tokens", "24", "--ctx", "1024"]


@pytest.fixture
def runner():
    return CliRunner()


def _one_line_error(result, code: int, text: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("marco: error: "), result.stderr
    assert text in lines[-1]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_version(runner):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("marco ")


@pytest.mark.model
def test_ask_answers_on_stdout(runner):
    result = runner.invoke(app, ["ask", *FAST, "What is the capital of France?"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip(), "an answer on stdout"
    assert "\x1b[" not in result.stdout


@pytest.mark.model
def test_default_model_falls_back_to_embedded_with_notice(runner):
    result = runner.invoke(app, ["ask", "--mode", "cot", "--max-tokens", "8", "Hi"])
    assert result.exit_code == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "not downloaded" in line]
    assert len(notices) == 1 and len(notices[0]) <= 100, result.stderr  # one short line
    assert "using smollm2-135m" in notices[0] and "marco pull marco-o1" in notices[0]


@pytest.mark.model
def test_a_model_without_a_thought_format(runner):
    """The embedded model has none: JSON says null, --show-thoughts says so once,
    and stdout carries the answer without marker words."""
    result = runner.invoke(app, ["ask", *FAST, "--json", "--mode", "cot", "What is 6 * 7?"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["thought"] is None and data["answer"]
    result = runner.invoke(app, ["ask", *FAST, "--show-thoughts", "--mode", "cot", "What is 6 * 7?"])
    assert result.exit_code == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "no thought format" in line]
    assert said == [
        "marco: smollm2-135m:Q4_1 has no thought format; the answer is what follows its last 'Answer:' line"
    ]
    for word in ("Answer:", "Output:", "<Output>", "<Thought>"):
        assert word not in result.stdout


@pytest.mark.model
def test_json_output(runner):
    result = runner.invoke(app, ["ask", *FAST, "--json", "--mode", "cot", "What is 2+2?"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"question", "answer", "thought", "model", "mode", "tokens", "seconds"}
    assert data["question"] == "What is 2+2?" and data["mode"] == "cot"
    assert data["model"] == "smollm2-135m:Q4_1"
    assert data["tokens"]["prompt"] > 10 and 0 < data["tokens"]["generated"] <= 24


@pytest.mark.model
def test_same_seed_same_answer(runner):
    args = ["ask", *FAST, "--temperature", "0.9", "--seed", "7", "--json", "Name a colour."]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert json.loads(first.stdout)["answer"] == json.loads(second.stdout)["answer"]


@pytest.mark.model
def test_stdin_then_blank_line_then_argument(runner):
    result = runner.invoke(app, ["ask", *FAST, "--json", "Summarise."], input="Some text.\n")
    assert json.loads(result.stdout)["question"] == "Some text.\n\nSummarise."
    result = runner.invoke(app, ["ask", *FAST, "--json", "-"], input="From stdin only\n")
    assert json.loads(result.stdout)["question"] == "From stdin only\n"


@pytest.mark.model
def test_show_thoughts_prints_thought_and_answer(runner):
    result = runner.invoke(app, ["ask", *FAST, "--show-thoughts", "Why is the sky blue?"])
    assert result.exit_code == 0 and result.stdout.strip()


@pytest.mark.parametrize(
    "args, stdin, code, text",
    [
        (["ask", "   "], None, 2, "the question is empty"),
        (["ask"], "", 2, "the question is empty"),
        (
            ["ask", "-m", "no-such-model", "hi"],
            None,
            2,
            "unknown model 'no-such-model'; known models: marco-o1, qwen3-1.7b, r1-distill-qwen-1.5b, r1-distill-qwen-7b, smollm2-135m",
        ),
        (["ask", "-m", "/nonexistent/model.gguf", "hi"], None, 1, "model file not found: /nonexistent/model.gguf"),
        (["ask", "-m", "marco-o1", "hi"], None, 1, "marco-o1:Q4_K_M is not downloaded"),
        (["ask", "-m", "marco-o1:q3", "hi"], None, 2, "no quant 'q3'"),
        (["ask", "-m", "tiny", "--max-tokens", "0", "hi"], None, 2, "--max-tokens must be > 0"),
        (["ask", "-m", "tiny", "--max-tokens", "-5", "hi"], None, 2, "--max-tokens must be > 0"),
        (["ask", "-m", "tiny", "--simulations", "0", "hi"], None, 2, "--simulations must be > 0"),
        (["ask", "-m", "tiny", "--temperature", "-1", "hi"], None, 2, "--temperature must be >= 0"),
        (["ask", "-m", "tiny", "--ctx", "-1", "hi"], None, 2, "--ctx must be > 0"),
        (["ask", "-m", "tiny", "--threads", "0", "hi"], None, 2, "--threads must be > 0"),
    ],
)
def test_usage_errors(runner, args, stdin, code, text):
    _one_line_error(runner.invoke(app, args, input=stdin), code, text)


def test_invalid_utf8_on_stdin(runner):
    result = runner.invoke(app, ["ask", "-m", "tiny"], input=b"caf\xe9 \xff\n")
    _one_line_error(result, 2, "stdin is not valid UTF-8")


def test_not_a_gguf(runner, tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_text("this is not a model")
    _one_line_error(runner.invoke(app, ["ask", "-m", str(fake), "hi"]), 1, "is not a GGUF model file")


@pytest.mark.model
def test_corrupt_gguf(runner, tmp_path, smol_gguf):
    broken = tmp_path / "truncated.gguf"
    broken.write_bytes(smol_gguf.read_bytes()[:4096])
    result = runner.invoke(app, ["ask", "-m", str(broken), "hi"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("marco: error: ")


def test_broken_models_toml(runner, tmp_path):
    bad = tmp_path / "models.toml"
    bad.write_text("[models.x]\npath = 'a.gguf'\nbogus = 1\n")
    _one_line_error(
        runner.invoke(app, ["ask", "--models", str(bad), "hi"]), 2, f"{bad}: [models.x]: unknown key 'bogus'"
    )


@pytest.mark.model
def test_prompt_longer_than_context(runner):
    question = "word " * 3000
    result = runner.invoke(app, ["ask", "-m", "tiny", "--ctx", "512", question])
    _one_line_error(result, 1, "context")


def test_debug_shows_traceback(runner):
    result = runner.invoke(app, ["--debug", "ask", "-m", "no-such", "hi"])
    assert result.exit_code != 0 and result.exception is not None


def _run(args, stdin: bytes | None, home: Path):
    return subprocess.run(
        [*MARCO, *args],
        input=stdin,
        capture_output=True,
        env=marco_env(home),
        timeout=300,
    )


@pytest.mark.model
def test_pipe_subprocess_clean_stdout(tmp_path):
    proc = _run(["ask", *FAST], b"What is 17*23?\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() and b"\x1b[" not in proc.stdout and b"\x1b[" not in proc.stderr


def test_pipe_subprocess_error_is_one_line(tmp_path):
    proc = _run(["ask", "-m", "nope", "hi"], b"", tmp_path)
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode().strip().count("\n") == 0


MCTS = [
    "-m",
    "tiny",
    "--mode",
    "mcts",
    "--simulations",
    "3",
    "--children",
    "2",
    "--action",
    "mini-32",
    "--max-tokens",
    "64",
    "--ctx",
    "2048",
]


@pytest.mark.model
def test_mcts_reports_the_search(runner):
    # --early-stop 0: all 3 simulations run (at seed 3 the rollouts agree early)
    result = runner.invoke(app, ["ask", *MCTS, "--early-stop", "0", "--json", "--seed", "3", "What is 6*7?"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mode"] == "mcts"
    search = data["search"]
    assert search["simulations"] == 3 and search["nodes"] >= 3 and search["stopped_by"] == "completed"
    assert search["tokens_generated"] > 0 and search["tokens_evaluated"] >= search["tokens_generated"]
    assert search["path"] and all(0.0 <= step["mean_value"] <= 1.0 for step in search["path"])
    assert all(0.0 <= step["confidence"] <= 1.0 for step in search["path"] if step["confidence"] is not None)
    assert data["answer"].strip()
    again = runner.invoke(app, ["ask", *MCTS, "--early-stop", "0", "--json", "--seed", "3", "What is 6*7?"])
    assert json.loads(again.stdout)["answer"] == data["answer"], "same seed, same answer"


@pytest.mark.model
def test_mcts_plain_output_is_answer_only(runner):
    result = runner.invoke(app, ["ask", *MCTS, "What is 6*7?"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() and "\x1b[" not in result.stdout


def test_help_exits_zero(runner):
    result = runner.invoke(app, ["ask", "--help"])
    assert result.exit_code == 0 and "--simulations" in result.stdout


def test_help_loads_no_engine_search_or_server():
    """`marco --help` and flag parsing import no model runtime, numpy, search or
    web stack: each command loads those when it runs."""
    heavy = ["llama_cpp", "huggingface_hub", "fastapi", "uvicorn", "numpy", "marco_cli.search"]
    code = (
        "import sys\nfrom marco_cli.cli import main\nsys.argv = ['marco', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=marco_env(), check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


@pytest.mark.model
def test_mcts_several_leaves_per_iteration_is_seeded(runner):
    args = ["ask", *MCTS, "--leaves", "2", "--json", "--seed", "5", "What is 6*7?"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["search"]["simulations"] == 3
    assert json.loads(runner.invoke(app, args).stdout)["answer"] == data["answer"]
    for value in ("0", "many", "-1"):
        bad = runner.invoke(app, ["ask", "-m", "tiny", "--leaves", value, "hi"])
        assert bad.exit_code == 2 and "--leaves must be auto or a whole number > 0" in bad.stderr


@pytest.mark.model
def test_too_many_threads_are_capped_with_a_notice(runner):
    from marco_cli.core.machine import usable_cpus

    cpus = usable_cpus()
    result = runner.invoke(app, ["ask", *FAST, "--max-tokens", "4", "--threads", "999", "Hi"])
    assert result.exit_code == 0, result.stderr
    assert f"marco: --threads 999 is more than the {cpus} CPUs here; using {cpus}" in result.stderr.splitlines()
    assert result.stdout.strip()


def test_show_thoughts_go_to_stderr_never_stdout(monkeypatch, runner, tmp_path):
    """As in translate and chat: stdout holds the answer only."""
    from scripted_backend import ScriptedBackend

    from marco_cli.commands import ask as ask_command
    from marco_cli.reasoner import Reasoner

    placeholder = tmp_path / "scripted.gguf"  # must exist; the scripted backend never reads it
    placeholder.write_bytes(b"")
    registry = tmp_path / "models.toml"  # a <Thought>/<Output> model whose text the scripted backend writes
    registry.write_text(f'[models.scripted]\npath = "{placeholder}"\nreasoning = "marco"\n', encoding="utf-8")
    monkeypatch.setattr(
        ask_command, "Reasoner", lambda model, runtime: Reasoner(model, runtime, backend=ScriptedBackend())
    )
    base = ["ask", "--models", str(registry), "-m", "scripted", "--simulations", "2"]
    for mode in ("cot", "mcts"):
        plain = runner.invoke(app, [*base, "--mode", mode, "What is 2+3?"])
        shown = runner.invoke(app, [*base, "--mode", mode, "--show-thoughts", "What is 2+3?"])
        assert plain.exit_code == shown.exit_code == 0, shown.stderr
        assert shown.stdout == plain.stdout and shown.stdout.strip()
        assert "<Thought>" not in shown.stdout
        data = json.loads(runner.invoke(app, [*base, "--mode", mode, "--json", "What is 2+3?"]).stdout)
        assert (
            data["thought"] and data["thought"].strip() in shown.stderr and data["thought"].strip() not in plain.stderr
        )
