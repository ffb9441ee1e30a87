"""``marco chat`` end to end on the real embedded model (llama.cpp, SmolLM2-135M):
CliRunner transcripts of piped sessions, save/load/resume, context trimming,
and a pseudo-terminal session where Ctrl-C cancels a turn, not the session.

The model's words are not asserted (a 135M model); the structure is: stdout
holds exactly the answers recorded in the saved conversation, one block and a
blank line each, and everything else is on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest
from child_env import spawn_marco
from typer.testing import CliRunner

from marco_cli.cli import app

# One thread: on a busy 2-core machine llama.cpp's spinning threads oversubscribe
# the cores and run several times slower than one thread does.
FAST = ["-m", "tiny", "--max-tokens", "16", "--ctx", "1024", "--threads", "1"]


def chat(*args: str, input: str):
    return CliRunner().invoke(app, ["chat", *FAST, *args], input=input)


def answers_block(path: Path) -> str:
    """What stdout must be: each answered turn's answer, then a blank line."""
    turns = json.loads(path.read_text(encoding="utf-8"))["turns"]
    return "".join(t["assistant"].strip() + "\n\n" for t in turns if "error" not in t)


@pytest.mark.model
def test_transcript_with_every_command(tmp_path):
    saved, snapshot = tmp_path / "chat.json", tmp_path / "snap.json"
    script = (
        "\n".join(
            [
                "hi",
                "/help",
                "/show",
                "/set temperature 0.5",
                "/set bogus 1",
                "/nope",
                "/set temperature hot",
                "/mode cot",
                "/mode fast",
                "/set max-tokens 12",
                "/tree",
                "/model no-such-model",
                "/model tiny",
                '"""',
                "What is 2+2?",
                "Answer briefly.",
                '"""',
                f"/save {snapshot}",
                "/reset",
                "/show",
                f"/load {snapshot}",
                "/show",
                "And 3+3?",
                "/exit",
                "never read",
            ]
        )
        + "\n"
    )
    result = chat("--save", str(saved), input=script)
    err = result.stderr
    assert result.exit_code == 1, err  # a piped run with rejected lines says so
    assert "Traceback" not in result.output
    conv = json.loads(saved.read_text(encoding="utf-8"))
    assert [t["user"] for t in conv["turns"]] == ["hi", "What is 2+2?\nAnswer briefly.", "And 3+3?"]
    assert result.stdout == answers_block(saved)  # stdout: answers only
    assert conv["settings"]["cot"]["temperature"] == 0.5 and conv["settings"]["cot"]["max_tokens"] == 12
    assert conv["model"] == "smollm2-135m:Q4_1" and conv["version"] == 1
    for expected in (
        "/set KEY VALUE",
        "model            smollm2-135m:Q4_1 (loaded)",
        "temperature: 0.5",
        "line 5: unknown setting 'bogus'",
        "line 6: unknown command '/nope'",
        "line 7: temperature must be a number, got 'hot'",
        "line 9: unknown mode 'fast'",
        "line 11: no search to show yet",
        "line 12: unknown model 'no-such-model'",
        "model: smollm2-135m:Q4_1",
        "saved 2 turns",
        "the conversation is cleared",
        "turns            0 in context",
        "loaded 2 turns",
        "turns            2 in context",
    ):
        assert expected in err, expected
    assert err.count("marco: error:") == 6  # one line each, and the session went on
    assert "never read" not in json.dumps(conv)


@pytest.mark.model
def test_resume_continues_and_flags_override(tmp_path):
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    r1 = chat("--save", str(first), "--temperature", "0.4", "--system", "You are terse.", input="Name a colour.\n")
    assert r1.exit_code == 0, r1.stderr
    r2 = chat(
        "--resume", str(first), "--save", str(second), "--seed", "7", input="/show\nAnd another one?\n"
    )  # ends by end of input (Ctrl-D): still saved
    assert r2.exit_code == 0, r2.stderr
    conv = json.loads(second.read_text(encoding="utf-8"))
    assert [t["user"] for t in conv["turns"]] == ["Name a colour.", "And another one?"]
    assert conv["system"] == "You are terse." and conv["settings"]["cot"]["temperature"] == 0.4
    assert conv["settings"]["cot"]["seed"] == 7  # given on the command line: wins over the file
    assert "1 in context" in r2.stderr and "You are terse." in r2.stderr
    assert r2.stdout == answers_block(second)[len(answers_block(first)) :]


def test_bad_resume_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 99}')
    result = chat("--resume", str(bad), input="hi\n")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"marco: error: {bad}: unsupported version 99 (this marco reads version 1)"
    assert chat("--save", str(tmp_path / "no" / "c.json"), input="hi\n").exit_code == 1


@pytest.mark.model
def test_context_full_drops_oldest_turns_and_model_errors_keep_the_question(tmp_path):
    saved = tmp_path / "c.json"
    long_question = "Tell me about rivers and the seas they flow into. " * 4
    huge = "word " * 400  # longer than the whole context: a model error, not a crash
    script = "\n".join([long_question] * 3 + [huge, "Still there?"]) + "\n"
    result = CliRunner().invoke(
        app,
        ["chat", "-m", "tiny", "--max-tokens", "12", "--ctx", "256", "--threads", "1", "--save", str(saved)],
        input=script,
    )
    assert "Traceback" not in result.output
    assert "dropped the oldest" in result.stderr
    assert "marco: error: line 4:" in result.stderr
    conv = json.loads(saved.read_text(encoding="utf-8"))
    assert len(conv["turns"]) == 5 and "error" in conv["turns"][3]
    assert conv["turns"][4]["user"] == "Still there?" and "error" not in conv["turns"][4]
    assert result.stdout == answers_block(saved)


@pytest.mark.model
def test_mcts_turn_and_tree(tmp_path):
    saved = tmp_path / "c.json"
    script = "/mode mcts\n/set simulations 2\n/set children 2\n/set max-depth 2\nWhat is 2+2?\n/tree\n/exit\n"
    result = chat("--save", str(saved), input=script)
    assert result.exit_code == 0, result.stderr
    conv = json.loads(saved.read_text(encoding="utf-8"))
    assert conv["mode"] == "mcts" and len(conv["turns"]) == 1
    assert result.stdout == answers_block(saved)
    assert "visits" in result.stderr or "─" in result.stderr  # the tree, drawn on stderr


@pytest.mark.model
def test_ctrl_c_cancels_a_turn_not_the_session(tmp_path):
    """A real pseudo-terminal: prompt, streamed answer, Ctrl-C mid-answer ->
    (cancelled) and the prompt again; the next question is answered; /exit."""
    child = spawn_marco(
        "chat",
        "-m",
        "tiny",
        "--max-tokens",
        "4000",
        "--temperature",
        "1.0",
        "--seed",
        "1",
        "--ctx",
        "4096",
        "--threads",
        "1",
        home=tmp_path,
        timeout=180,
        dimensions=(40, 120),
    )
    shown = ""
    try:
        child.expect_exact(">>> ")
        child.sendintr()  # at an empty prompt: a hint, not an exit
        child.expect_exact("(use /exit or Ctrl-D to quit)")
        child.expect_exact(">>> ")
        child.sendline("/set max-tokens 8")
        child.expect_exact("max-tokens: 8")
        child.sendline("Say hello.")  # loads the model, so what streams next is the answer
        child.expect_exact("Say hello.")
        child.expect_exact(">>> ")
        child.sendline("/set max-tokens 4000")
        child.expect_exact(">>> ")
        child.sendline("Write a very long story about a dragon who learns to count.")
        child.expect_exact("learns to count.")  # the terminal's echo
        child.expect(r"[A-Za-z]{3,}")  # the answer is streaming
        child.sendintr()
        child.expect_exact("(cancelled)")
        child.expect_exact(">>> ")
        child.sendline("/show")
        child.expect(r"turns\s+1 in context")  # the cancelled turn is not in the conversation
        child.expect_exact(">>> ")
        child.sendline("/set max-tokens 8")
        child.expect_exact(">>> ")
        child.sendline("Say it again.")  # the session still answers
        child.expect_exact("Say it again.")
        child.expect_exact(">>> ")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        shown = (child.before or "") if isinstance(child.before, str) else ""
        child.close()
    assert child.exitstatus == 0, shown
    history = (tmp_path / "chat_history").read_text(encoding="utf-8")
    assert "Say hello." in history and "/exit" in history


@pytest.mark.model
def test_resume_file_alone_keeps_adding_to_that_file(tmp_path):
    """`--resume FILE` means what it means in `marco eval`: carry on from FILE
    and keep adding to it; plain `--resume` continues the --save file."""
    saved = tmp_path / "c.json"
    assert chat("--save", str(saved), input="Name a colour.\n").exit_code == 0
    again = chat("--resume", str(saved), input="And another one?\n")
    assert again.exit_code == 0, again.stderr
    turns = json.loads(saved.read_text(encoding="utf-8"))["turns"]
    assert [t["user"] for t in turns] == ["Name a colour.", "And another one?"]
    third = chat("--save", str(saved), "--resume", input="One more?\n")
    assert third.exit_code == 0, third.stderr
    assert len(json.loads(saved.read_text(encoding="utf-8"))["turns"]) == 3
