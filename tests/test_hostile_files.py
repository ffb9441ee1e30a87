"""Every file marco reads goes through one gate (core/untrusted.py): deep
nesting, huge integers, NaN/infinity and lone surrogates are one line naming
the file, never an internal error, in replay, models.toml, conversations (also
inside a running chat), glossaries, datasets and results files. A tree's
escape sequences are shown, not obeyed, and its times cannot overflow a replay."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from child_env import ROOT
from child_env import run_marco as marco
from rich.console import Console
from test_treefile import save_searched
from typer.testing import CliRunner

from marco_cli.chat.conversation import load_conversation
from marco_cli.cli import app
from marco_cli.core.errors import ConfigError, ConversationFileError
from marco_cli.core.untrusted import MAX_NESTING, UntrustedDataError, load_json, load_toml
from marco_cli.evaluation.datasets import DatasetError, load_dataset
from marco_cli.evaluation.results import ResultsError, read_rows
from marco_cli.translate.glossary import load_glossary
from marco_cli.treefile.io import load_tree
from marco_cli.ui.replay import MAX_PAUSE, pause, play

DEEP_JSON = "[" * 100_000
DEEP_TOML = "x = " + "[" * 100_000


@pytest.fixture(scope="module")
def tree_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "tree.json"
    save_searched(path)
    return path


def one_line(proc, code: int, *texts: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("marco: error: "), proc.stderr
    assert "internal error" not in lines[0] and "Traceback" not in proc.stderr
    for text in texts:
        assert text in lines[0]
    return lines[0]


def edited(tree_file: Path, tmp_path: Path, change, raw: bool = False) -> Path:
    text = tree_file.read_text(encoding="utf-8")
    out = tmp_path / "edited.json"
    if raw:
        out.write_text(change(text), encoding="utf-8")
    else:
        data = json.loads(text)
        change(data)
        out.write_text(json.dumps(data), encoding="utf-8")
    return out


# -- the gate itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        (DEEP_JSON, "nested too deeply"),
        ('{"a": ' + "9" * 5000 + "}", "5000 digits"),
        ('{"a": -99999999999999999999}', "too large"),
        ('["\\ud800"]', r"U\+D800"),
        ('{"v": NaN}', "NaN"),
        ('{"v": 1e999}', "not a finite number"),
    ],
)
def test_json_gate(text, message):
    with pytest.raises(UntrustedDataError, match=message):
        load_json(text)


def test_nesting_up_to_the_limit_is_fine():
    assert load_json("[" * MAX_NESTING + "]" * MAX_NESTING)
    assert load_toml('a = {b = [1, 2.5, "x"]}') == {"a": {"b": [1, 2.5, "x"]}}
    for text in (DEEP_TOML, "a = inf", "a = nan", "a = 99999999999999999999"):
        with pytest.raises(UntrustedDataError):
            load_toml(text)


# -- every reader, through the CLI where the fault was ------------------------------


def test_replay_of_a_huge_integer_or_a_lone_surrogate(tree_file, tmp_path):
    big = edited(tree_file, tmp_path, lambda t: t.replace('"visits":', '"visits":' + "7" * 5000, 1), raw=True)
    one_line(marco("replay", str(big)), 2, str(big), "digits is too large")
    half = edited(tree_file, tmp_path, lambda t: t.replace('"question":"add', '"question":"\\ud800add', 1), raw=True)
    one_line(marco("replay", str(half)), 2, str(half), "U+D800")
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP_JSON)
    one_line(marco("replay", str(deep)), 2, "nested too deeply")


def test_deep_models_toml(tmp_path):
    registry = tmp_path / "models.toml"
    registry.write_text(DEEP_TOML)
    one_line(marco("models", "--models", str(registry)), 2, str(registry), "nested too deeply")


def test_conversation_files(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP_JSON)
    half = tmp_path / "half.json"
    half.write_text('{"version": 1, "turns": [{"user": "hi \\ud800", "assistant": "x"}]}')
    for path, text in ((deep, "nested too deeply"), (half, "U+D800")):
        with pytest.raises(ConversationFileError, match=text.replace("+", r"\+")):
            load_conversation(path)
    one_line(marco("chat", "--resume", str(half), "-m", "tiny"), 1, str(half), "U+D800")


@pytest.mark.model
def test_chat_load_of_a_hostile_file_keeps_the_session(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP_JSON)
    result = CliRunner().invoke(app, ["chat", "-m", "tiny", "--threads", "1"], input=f"/load {deep}\n/show\n")
    assert "nested too deeply" in result.stderr and "internal error" not in result.stderr
    assert "model            smollm2-135m:Q4_1" in result.stderr  # the line after it was still answered
    assert result.exit_code == 1  # a piped run with a rejected line says so


def test_glossary_dataset_and_results_files(tmp_path):
    glossary = tmp_path / "g.toml"
    glossary.write_text('[terms]\nx = "y"\nz = ' + "[" * 5000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_glossary(glossary)
    dataset = tmp_path / "d.jsonl"
    dataset.write_text('{"question": "q", "answer": ' + "1" * 5000 + "}\n")
    with pytest.raises(DatasetError, match=r"d.jsonl:1: .*5000 digits"):
        load_dataset(dataset)
    results = tmp_path / "r.jsonl"
    results.write_text('{"question_id": "a", "seconds": NaN}\n{"question_id": "b"}\n')
    with pytest.raises(ResultsError, match=r"r\.jsonl:1"):
        read_rows(results)


# -- what a replay shows and how long it waits --------------------------------------


def test_escape_sequences_in_a_tree_are_shown_not_obeyed(tree_file, tmp_path):
    hostile = "\x1b[2J\x1b]0;owned\x07\x1b]8;;http://evil.test\x1b\\click\x1b]8;;\x1b\\ \u202eabc"

    def change(data):
        data["question"] = hostile
        data["tree"]["children"][0]["text"] = hostile
        data["answer"]["text"] = data["answer"]["answer"] = hostile

    path = edited(tree_file, tmp_path, change)
    proc = marco("replay", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\u202e" not in proc.stdout
    assert "\\x1b[2J" in proc.stdout and "\\u202e" in proc.stdout


def test_huge_times_and_tiny_speeds_wait_a_bounded_time(tree_file, tmp_path):
    def change(data):
        for i, event in enumerate(data["events"]):
            event["t"] = 1e12 * (i + 1)

    saved = load_tree(edited(tree_file, tmp_path, change))
    for speed in (1.0, 1e-300):
        waits: list[float] = []
        console = Console(file=io.StringIO(), force_terminal=True, width=100, height=30)
        play(saved, console, speed=speed, sleep=waits.append)
        assert waits and all(0 < w <= MAX_PAUSE for w in waits)
    assert pause(1.0, 2.0) == 0.5 and pause(1e308, 1e-300) == MAX_PAUSE and pause(-1.0, 1.0) == 0.0
    bad = CliRunner().invoke(app, ["replay", "--animate", "--speed", "nan", str(tree_file)])
    assert bad.exit_code == 2 and bad.stderr == "marco: error: --speed must be > 0, got nan\n"


def test_files_are_parsed_only_through_the_gate():
    """Every reader of a file goes through core/untrusted.py; json/tomllib are
    called elsewhere only on HTTP bodies (the server's requests, a remote
    backend's answers)."""
    import re

    parses = re.compile(r"json\.loads?\(|tomllib\.loads?\(")
    allowed = {
        "core/untrusted.py",
        "server/app.py",
        "server/body.py",
        "backends/remote_http.py",
        "backends/remote_wire.py",
    }
    found = {
        str(path.relative_to(ROOT / "marco_cli"))
        for path in (ROOT / "marco_cli").rglob("*.py")
        if parses.search(path.read_text(encoding="utf-8"))
    }
    assert found <= allowed, found - allowed


def test_every_console_escapes_control_characters():
    """Rich consoles come only from ui/console.py, which makes SafeConsoles."""
    import re

    from marco_cli.ui.console import SafeConsole, err_console, out_console

    assert isinstance(err_console(), SafeConsole) and isinstance(out_console(), SafeConsole)
    makes = re.compile(r"\bConsole\(")
    found = {
        str(path.relative_to(ROOT / "marco_cli"))
        for path in (ROOT / "marco_cli").rglob("*.py")
        if makes.search(path.read_text(encoding="utf-8"))
    }
    assert found <= {"ui/console.py"}, found
