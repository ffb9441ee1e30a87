"""Real searches on the embedded tiny model: a piped `marco ask --save-tree`
(no escape codes anywhere), `marco replay` of that file (still and animated),
and `marco ask` in a real pseudo-terminal, where the live tree is drawn and
Ctrl-C still saves the partial tree and prints the answer (exit 130)."""

from __future__ import annotations

import io
import json
import re
import subprocess

import pexpect
import pytest
from child_env import MARCO, marco_env, spawn_marco
from rich.console import Console
from typer.testing import CliRunner

from marco_cli.cli import app
from marco_cli.treefile.io import load_tree
from marco_cli.ui.mirror import SearchMirror
from marco_cli.ui.replay import play, replay_events

pytestmark = pytest.mark.model

QUESTION = "Explain why the sky is blue."
SMALL = [
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
]
ESC = "\x1b"
TREE_LINE = re.compile(r"── (?:\x1b\[[0-9;]*m)*(?:» )?(?:▶ )?n=\d+ q=")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    path = home / "sky.json"
    proc = subprocess.run(
        [*MARCO, "ask", *SMALL, "--confidence", "--save-tree", str(path), QUESTION],
        env=marco_env(home, TERM="xterm"),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    return proc, path


def test_piped_run_has_no_escape_codes_and_saves_the_tree(real_run):
    proc, path = real_run
    assert ESC not in proc.stdout and ESC not in proc.stderr
    assert proc.stderr == ""  # nothing animated, no final view: stderr is not a terminal
    saved = load_tree(path)
    assert proc.stdout.strip() == saved.data["answer"]["answer"]  # --confidence piped is the plain answer
    assert saved.question == QUESTION and saved.model.startswith("smollm2-135m")
    assert saved.options["simulations"] == 3 and saved.options["action"] == "mini-32"
    assert saved.data["stopped_by"] == "completed" and saved.data["stats"]["simulations"] == 3
    assert len(list(saved.root.walk())) == saved.data["stats"]["nodes"] >= 3
    assert any(r["text"] for r in saved.data["rollouts"])


def test_replay_draws_the_saved_tree(real_run):
    _, path = real_run
    saved = load_tree(path)
    result = CliRunner().invoke(app, ["replay", str(path)])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert ESC not in out
    lines = out.splitlines()
    assert lines[0].startswith(f"{QUESTION}  n={saved.root.visits} q=")
    assert sum(1 for line in lines if TREE_LINE.search(line)) == len(list(saved.root.walk())) - 1
    assert sum(1 for line in lines if "── » n=" in line) == len(saved.chosen_path)
    assert "simulations  3/3 (completed)" in out and "╭─ MCTS" in out


def test_replayed_events_rebuild_the_saved_tree(real_run):
    saved = load_tree(real_run[1])
    mirror = SearchMirror()
    timeline = list(replay_events(saved))
    for _, event in timeline:
        mirror.apply(event)
    rebuilt = {v.id: v for v in mirror.view().walk()}
    for node in saved.root.walk():
        again = rebuilt[node.id]
        assert (again.parent_id, again.text, again.visits, again.reflection) == (
            node.parent_id,
            node.text,
            node.visits,
            node.reflection,
        )
        assert again.total_value == pytest.approx(node.total_value, abs=1e-4)
    assert [t for t, _ in timeline] == sorted(t for t, _ in timeline)


def test_animate_waits_in_proportion_to_speed(real_run):
    saved = load_tree(real_run[1])
    waits: list[float] = []
    console = Console(file=io.StringIO(), force_terminal=True, color_system=None, width=100, height=30)
    play(saved, console, speed=50.0, sleep=waits.append)
    assert sum(waits) == pytest.approx(saved.events[-1]["t"] / 50.0)
    assert "MCTS" in console.file.getvalue()


def test_animate_off_a_terminal_prints_the_final_tree_only(real_run):
    _, path = real_run
    still = CliRunner().invoke(app, ["replay", str(path)])
    animated = CliRunner().invoke(app, ["replay", "--animate", "--speed", "1000", str(path)])
    assert animated.exit_code == 0 and animated.stdout == still.stdout
    bad = CliRunner().invoke(app, ["replay", "--animate", "--speed", "0", str(path)])
    assert bad.exit_code == 2 and bad.stderr == "marco: error: --speed must be > 0, got 0.0\n"


def test_animate_in_a_terminal(real_run, tmp_path):
    _, path = real_run
    child = spawn_marco("replay", "--animate", "--speed", "1000", str(path), home=tmp_path, timeout=120)
    child.expect(pexpect.EOF)
    shown = child.before
    child.close()
    assert child.exitstatus == 0, shown
    assert "\x1b[?25l" in shown  # the live display ran (rich hides the cursor)
    assert "MCTS" in shown and QUESTION in shown and "simulations" in shown


def test_ask_in_a_terminal_draws_the_live_tree_and_ctrl_c_keeps_it(tmp_path):
    """The live tree on stderr while searching; Ctrl-C stops it cleanly, the
    partial tree is saved, the best answer so far is printed, exit 130."""
    path = tmp_path / "partial.json"
    child = spawn_marco(
        "ask",
        "-m",
        "tiny",
        "--mode",
        "mcts",
        "--simulations",
        "50",
        "--children",
        "2",
        "--action",
        "mini-32",
        "--max-tokens",
        "256",
        "--save-tree",
        str(path),
        "Write a long story about a dragon who learns to count.",
        home=tmp_path,
        timeout=300,
    )
    child.expect(r"MCTS (?:\x1b\[[0-9;]*m)*simulation \d+/50")  # the header
    child.expect(TREE_LINE)  # a child node drawn under the root
    shown = child.before + child.after
    child.sendintr()
    child.expect(pexpect.EOF)
    shown += child.before
    child.close()
    assert child.exitstatus == 130, shown
    assert "Traceback" not in shown and "interrupted" in shown
    assert "╭─ MCTS" in shown  # the final view replaced the animation
    answer = shown.rsplit("╯", 1)[1].split("marco: interrupted")[0]
    assert re.search(r"\w", answer), shown  # then the best answer so far
    saved = load_tree(path)
    assert saved.data["stopped_by"] == "interrupted"
    assert json.loads(path.read_text())["events"][-1]["type"] == "search_finished"
