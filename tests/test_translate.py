"""`marco translate` on the real embedded model (SmolLM2-135M through
llama.cpp). Kept fast: few tokens per line, small inputs. The tiny model's
translations are poor; what is tested is the contract around them (line
count and order, errors, warnings, output shapes)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from child_env import MARCO, marco_env
from typer.testing import CliRunner

import marco_cli.search
from marco_cli.cli import app

# 16 tokens are enough to test the contract. One thread: a 135M model gains
# little from two, and a busy 2-core CI box loses a lot to spinning threads.
FAST = ["-m", "tiny", "--max-tokens", "16", "--threads", "1"]

SOURCE = "这个鞋拥有踩屎感\n\nI am feeling blue today 😢\n\n\nこんにちは、元気ですか 🙂\n"
SOURCE_LINES = SOURCE.split("\n")[:-1]


def _invoke(args, stdin=None):
    return CliRunner().invoke(app, ["translate", *FAST, *args], input=stdin)


def _marco(args, stdin_path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """A real process with real pipes, as a shell pipeline would run it."""
    with stdin_path.open("rb") as stdin:
        return subprocess.run(
            [*MARCO, "translate", *FAST, *args],
            stdin=stdin,
            capture_output=True,
            env=marco_env(tmp_path / "home"),
            timeout=300,
            cwd=tmp_path,
        )


@pytest.mark.model
def test_pipe_keeps_line_count_order_and_blank_lines(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text(SOURCE, encoding="utf-8")
    proc = _marco(["--to", "en"], src, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode("utf-8").split("\n")
    assert out[-1] == "" and len(out) - 1 == len(SOURCE_LINES)  # one line out per line in
    for source, translation in zip(SOURCE_LINES, out):
        assert bool(source.strip()) == bool(translation.strip()), (source, translation)
    # stderr is a pipe: no progress bar, no escape codes; the notice about the
    # default model is not shown because -m picks one
    assert proc.stderr == b""


@pytest.mark.model
def test_progress_bar_on_a_terminal_stderr_leaves_stdout_clean(tmp_path):
    """stderr on a terminal, stdout to a file: the bar is drawn on stderr and
    the translations still go to the file (Rich's Progress would redirect
    stdout into its own console unless told not to)."""
    src, out = tmp_path / "src.txt", tmp_path / "out.txt"
    src.write_text("one\n\ntwo\nthree\n", encoding="utf-8")
    env = marco_env(tmp_path / "home", TERM="xterm")
    command = f"{sys.executable} -m marco_cli translate {' '.join(FAST)} --to fr < {src} > {out}"
    child = pexpect.spawn("bash", ["-c", command], env=env, cwd=str(tmp_path), encoding="utf-8", timeout=300)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "translating" in child.before and "3/3" in child.before
    lines = out.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 5 and lines[1] == "" and all(lines[i] for i in (0, 2, 3))
    assert "\x1b" not in out.read_text(encoding="utf-8")

    # Both on one terminal: each translation is printed above the bar, on a
    # cleared line, never glued to the end of the bar's line. NO_COLOR: a bar
    # without colours.
    command = f"{sys.executable} -m marco_cli translate {' '.join(FAST)} --to fr < {src}"
    env["NO_COLOR"] = "1"
    child = pexpect.spawn("bash", ["-c", command], env=env, cwd=str(tmp_path), encoding="utf-8", timeout=300)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    for line in (lines[0], lines[2], lines[3]):
        assert f"\x1b[2K{line}\r\n" in child.before, (line, child.before)
    assert "translating" in child.before and not re.search(r"\x1b\[[0-9;]*3[0-9]m", child.before)


def test_no_text_on_a_terminal_is_a_usage_error(tmp_path):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "marco_cli", "translate", "--to", "en"],
        env=marco_env(tmp_path / "home"),
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2 and "no text given" in child.before


@pytest.mark.model
def test_json_lines_in_input_order():
    result = _invoke(["--to", "en", "--json"], SOURCE)
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in rows] == list(range(1, len(SOURCE_LINES) + 1))
    assert [r["source"] for r in rows] == SOURCE_LINES  # CJK and emoji intact
    for row in rows:
        assert set(row) == {"line", "source", "translation", "thought"}
        assert bool(row["translation"]) == bool(row["source"].strip())
        assert "\n" not in row["translation"]


@pytest.mark.model
def test_long_line_is_reported_with_its_number_and_the_rest_translated(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("short line\n" + "很长的句子，" * 300 + "\nanother short line\n", encoding="utf-8")
    proc = _marco(["--to", "en", "--ctx", "256"], src, tmp_path)
    assert proc.returncode == 1
    out = proc.stdout.decode("utf-8").split("\n")
    assert len(out) == 4 and out[0] and out[1] == "" and out[2]
    err = proc.stderr.decode("utf-8").splitlines()
    assert err[0].startswith("marco: line 2: ") and "context" in err[0]
    assert err[-1] == "marco: error: 1 of 3 lines could not be translated"


@pytest.mark.model
def test_glossary_warning_matches_the_output(tmp_path):
    glossary = tmp_path / "g.toml"
    glossary.write_text('[terms]\n"踩屎感" = "cushioned comfort"\n"blue" = "sad"\n', encoding="utf-8")
    result = _invoke(["--to", "en", "--glossary", str(glossary)], "这个鞋拥有踩屎感\nI am feeling blue\nnothing here\n")
    assert result.exit_code == 0, result.stderr
    out = result.stdout.splitlines()
    expected = []
    for number, (term, rendering) in ((1, ("踩屎感", "cushioned comfort")), (2, ("blue", "sad"))):
        if rendering not in out[number - 1].lower():
            expected.append(f"marco: line {number}: glossary term '{term}' -> '{rendering}' was not used")
    assert result.stderr.splitlines() == expected


def test_bad_glossary_stops_before_translating(tmp_path):
    glossary = tmp_path / "g.toml"
    glossary.write_text('[terms]\n"踩屎感" = 1\n', encoding="utf-8")
    result = _invoke(["--to", "en", "--glossary", str(glossary)], "这个鞋拥有踩屎感\n")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == f"marco: error: {glossary}: [terms].'踩屎感': expected a string, got int 1"


@pytest.mark.model
def test_paragraph_blocks(tmp_path):
    result = _invoke(["--to", "fr", "--paragraph"], "Good morning.\nHow are you?\n\n\n\nSee you later.\n")
    assert result.exit_code == 0, result.stderr
    blocks = result.stdout.rstrip("\n").split("\n\n")
    assert len(blocks) == 2 and all(b.strip() for b in blocks)


@pytest.mark.model
def test_one_shot_argument_and_language_names():
    result = _invoke(["--to", "German", "--from", "English", "I am feeling blue 😢"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.strip()


@pytest.mark.model
def test_unknown_language_and_empty_input():
    result = _invoke(["--to", "elvish", "hi"])
    assert result.exit_code == 2
    assert result.stderr.startswith("marco: error: unknown language 'elvish' for --to; use one of: en, zh,")
    result = _invoke(["--to", "en"], "")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.model
@pytest.mark.skipif(not hasattr(marco_cli.search, "run_search"), reason="MCTS search not merged yet")
def test_mcts_mode():
    result = _invoke(
        ["--to", "en", "--mode", "mcts", "--simulations", "2", "--children", "2", "--json"], "这个鞋拥有踩屎感\n\nhi\n"
    )
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3] and rows[0]["translation"] and not rows[1]["translation"]
