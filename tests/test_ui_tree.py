"""Drawing the search: the tree, its collapse rules, the header, the summary,
the confidence heatmap and the live view, tested by exact text on consoles
without colour (rich's own tests/test_tree.py style)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from scripted_backend import ScriptedBackend
from ui_trees import small_result, small_tree, wide_tree

from marco_cli.core.settings import Action, SearchSettings
from marco_cli.search import StoppedBy, events, run_search
from marco_cli.ui.console import err_console
from marco_cli.ui.heatmap import answer_heatmap, legend, render_confidence, token_pieces
from marco_cli.ui.live import LiveSearchView
from marco_cli.ui.mirror import SearchMirror
from marco_cli.ui.summary import Progress, render_final, render_header
from marco_cli.ui.tree_view import best_path_ids, render_tree, snippet, snippet_width_for

PROMPT = "Question: add two and three\n"


def text_of(renderable, width: int = 72) -> str:
    console = Console(color_system=None, width=width)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


def lines_of(renderable, width: int = 72) -> list[str]:
    return text_of(renderable, width).rstrip("\n").split("\n")


# -- the tree -----------------------------------------------------------------------


def test_full_tree_marks_best_path_active_reflection_and_terminal():
    assert text_of(render_tree(small_tree(), active=3)) == (
        "root  n=5 q=0.70\n"
        "├── » n=3 q=0.80 c=0.81 <Thought> First, add two and three.\n"
        "│   ├── » ▶ n=2 q=0.85 c=0.90 That gives five.\n"
        "│   │   └── » n=1 q=0.90 c=0.95 <Output>5</Output> ∎\n"
        "│   └── n=1 q=0.50 c= --  ↺ Wait! Maybe I made some mistakes! I need to…\n"
        "└── n=2 q=0.55 c=0.42 Let me think about this very long step text tha…\n"
        "    └── n=0 q= --  c=0.30 x\n"
    )


def test_narrow_console_cuts_the_text_never_the_figures():
    assert text_of(render_tree(small_tree(), active=3), width=40) == (
        "root  n=5 q=0.70\n"
        "├── » n=3 q=0.80 c=0.81 <Thought> First…\n"
        "│   ├── » ▶ n=2 q=0.85 c=0.90 That give…\n"
        "│   │   └── » n=1 q=0.90 c=0.95 <Output…\n"
        "│   └── n=1 q=0.50 c= --  ↺ Wait! Maybe…\n"
        "└── n=2 q=0.55 c=0.42 Let me think abou…\n"
        "    └── n=0 q= --  c=0.30 x\n"
    )


def test_tall_tree_collapses_but_keeps_the_best_path():
    assert text_of(render_tree(small_tree(), max_lines=5)) == (
        "root  n=5 q=0.70\n"
        "├── » n=3 q=0.80 c=0.81 <Thought> First, add two and three.\n"
        "│   ├── » n=2 q=0.85 c=0.90 That gives five.\n"
        "│   │   └── » n=1 q=0.90 c=0.95 <Output>5</Output> ∎\n"
        "│   └── +1 more\n"
        "└── +2 more\n"
    )


def test_collapse_shows_most_visited_siblings_first():
    assert text_of(render_tree(wide_tree(), max_lines=8)) == (
        "root  n=21 q=0.48\n"
        "├── n=4 q=0.50 c=0.50 step 4\n"
        "│   └── +2 more\n"
        "├── n=5 q=0.50 c=0.50 step 5\n"
        "│   └── +2 more\n"
        "├── » n=6 q=0.50 c=0.50 step 6\n"
        "│   └── +2 more\n"
        "└── +9 more\n"
    )


@pytest.mark.parametrize("max_lines", range(4, 25))
def test_collapsed_tree_fits_its_line_budget(max_lines):
    backend = ScriptedBackend()
    result = run_search(backend, backend.tokenize(PROMPT), SearchSettings(simulations=12, children=3, max_tokens=150))
    total = sum(1 for _ in result.root.walk())
    forced = 1 + 2 * len(best_path_ids(result.root))  # worst case: each path node with a "+n more"
    lines = lines_of(render_tree(result.root, max_lines=max_lines), width=200)
    assert len(lines) <= max(max_lines, forced)
    shown = sum(1 for line in lines if " n=" in line or line.startswith("root"))
    hidden = sum(int(line.split("+")[1].split()[0]) for line in lines if line.lstrip("│├└─ ").startswith("+"))
    assert shown + hidden == total  # every node is drawn or counted


def test_path_only_folds_everything_else():
    assert lines_of(render_tree(small_tree(), path_only=True))[-2:] == ["│   └── +1 more", "└── +2 more"]


def test_best_path_is_the_most_visited_chain():
    assert best_path_ids(small_tree()) == (1, 3, 5)
    assert best_path_ids(wide_tree()) == (6,)  # its leaves were never visited


def test_snippet_is_one_line_and_bounded():
    assert snippet("a\n\n b\tc", 10) == "a b c"
    assert snippet("abcdefghijkl", 5) == "abcd…"


def test_colour_only_on_colour_consoles(monkeypatch):
    colour = Console(color_system="truecolor", force_terminal=True, width=80)
    with colour.capture() as capture:
        colour.print(render_tree(small_tree()))
    assert "\x1b[38;2;" in capture.get()  # confidences are tinted
    monkeypatch.setenv("NO_COLOR", "1")
    plain = err_console()
    plain.file = io.StringIO()
    plain.print(render_tree(small_tree()))
    assert "\x1b[38;2;" not in plain.file.getvalue()


# -- header, summary, final view -------------------------------------------------------


def test_header():
    assert text_of(render_header(Progress(2, 16, 9, 412, 10.7))) == (
        "MCTS simulation 2/16 · 9 nodes · 412 tokens · 38.5 tok/s · 10.7s\n"
    )
    done = Progress(16, 16, 9, 412, 10.0, finished=True)
    assert text_of(render_header(done)) == "MCTS done 16/16 · 9 nodes · 412 tokens · 41.2 tok/s · 10.0s\n"


def test_final_view_is_the_chosen_path_and_a_summary():
    result = small_result(StoppedBy.INTERRUPTED, complete=False)
    assert text_of(render_final(result, simulations=16)) == (
        "root  n=5 q=0.70\n"
        "├── » n=3 q=0.80 c=0.81 <Thought> First, add two and three.\n"
        "│   ├── » n=2 q=0.85 c=0.90 That gives five.\n"
        "│   │   └── » n=1 q=0.90 c=0.95 <Output>5</Output> ∎\n"
        "│   └── +1 more\n"
        "└── +2 more\n"
        "╭─ MCTS ──────────────────────────────────────╮\n"
        "│ answer       5                              │\n"
        "│ simulations  5/16 (interrupted), 5 rollouts │\n"
        "│ nodes        7 (depth 3)                    │\n"
        "│ tokens       420 generated · 35.0 tok/s     │\n"
        "│ time         12.0s                          │\n"
        "│ value        0.900 (unfinished path)        │\n"
        "╰─────────────────────────────────────────────╯\n"
    )


# -- heatmap ----------------------------------------------------------------------------


def test_token_pieces_give_a_split_character_to_the_token_completing_it():
    table = {1: b"caf", 2: b"\xc3", 3: b"\xa9", 4: b" ok"}

    def detokenize(ids):
        return b"".join(table[i] for i in ids).decode("utf-8", errors="replace")

    assert token_pieces(detokenize, [1, 2, 3, 4]) == ["caf", "", "é", " ok"]
    assert token_pieces(detokenize, [1, 2]) == ["caf", "\ufffd"]  # a dangling half stays visible


def test_heatmap_text_and_styles():
    text = render_confidence(["The", " answer", " is", " 4"], [0.9, 0.2, None, 1.0])
    assert text.plain == "The answer is 4"
    styles = [(text.plain[s.start : s.end], str(s.style)) for s in text.spans]
    assert styles[2] == (" is", "dim")  # forced token: no confidence
    assert styles[0][1].startswith("#") and styles[0][1] != styles[1][1]  # green-ish vs red-ish


def test_answer_heatmap_keeps_only_the_answer_unless_thoughts_are_asked():
    pieces = ["<Thought>", "\nadd", " them", "\n</Thought>", "\n<Output>", "\n4", "</Output>"]
    confs = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
    assert answer_heatmap(pieces, confs).plain == "4"
    assert answer_heatmap(pieces, confs, thought=True).plain == "add them\n\n4"
    assert text_of(answer_heatmap(pieces, confs)) == "4\n"
    assert text_of(legend()) == "confidence 0 ▇▇▇▇▇▇▇▇▇▇▇ 1\n"


# -- the mirror and the live view ----------------------------------------------------------


class MirrorCheck:
    """Feeds a mirror and compares it with every IterationDone snapshot."""

    def __init__(self) -> None:
        self.mirror = SearchMirror()
        self.checked = 0

    def on_event(self, event) -> None:
        self.mirror.apply(event)
        if isinstance(event, events.IterationDone):
            assert _shape(self.mirror.view()) == _shape(event.tree)
            self.checked += 1


def _shape(view):
    return [
        (
            v.id,
            v.parent_id,
            v.text,
            v.visits,
            round(v.total_value, 9),
            v.rollouts,
            v.reflection,
            v.terminal,
            None if v.step_confidence is None else round(v.step_confidence, 9),
        )
        for v in view.walk()
    ]


@pytest.mark.parametrize(
    "settings",
    [
        SearchSettings(simulations=8, children=3, max_tokens=150, reflection=True),
        SearchSettings(simulations=12, children=2, max_tokens=150, leaves_per_iteration=3, reflect_below=0.9),
    ],
)
def test_mirror_rebuilt_from_events_matches_every_snapshot(settings):
    backend = ScriptedBackend()
    check = MirrorCheck()
    result = run_search(backend, backend.tokenize(PROMPT), settings, observer=check)
    assert check.checked == result.stats.iterations > 0
    assert _shape(check.mirror.view()) == _shape(result.root)


def _terminal_console(height: int = 20, width: int = 90) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, color_system=None, width=width, height=height)


def test_live_view_draws_header_and_tree_within_the_terminal():
    console = _terminal_console(height=12)
    view = LiveSearchView(console, simulations=10, title="add two and three", clock=lambda: 4.0)
    assert view.enabled
    backend = ScriptedBackend()
    settings = SearchSettings(simulations=10, children=3, max_tokens=150)
    run_search(backend, backend.tokenize(PROMPT), settings, observer=view)  # no `with`: nothing animates
    lines = lines_of(view._renderable(), width=90)
    assert lines[0] == "MCTS done 10/10 · " + lines[0].split(" · ", 1)[1]
    assert lines[1].startswith("add two and three  n=")
    assert len(lines) <= 12 - 1
    assert any(line.lstrip("│├└─ ").startswith("» n=") for line in lines)


def test_live_view_animates_then_leaves_the_final_view():
    console = _terminal_console()
    backend = ScriptedBackend()
    with LiveSearchView(console, simulations=4, title="q") as view:
        result = run_search(backend, backend.tokenize(PROMPT), SearchSettings(simulations=4), observer=view)
    out = console.file.getvalue()
    assert "\x1b[?25l" in out  # rich hid the cursor: it was live
    final = text_of(render_final(result, simulations=4, title="q", snippet_width=snippet_width_for(console)), width=90)
    assert out.endswith(final)


def test_live_view_is_inert_off_a_terminal():
    console = Console(file=io.StringIO(), width=80)  # not a terminal
    backend = ScriptedBackend()
    with LiveSearchView(console, simulations=3) as view:
        run_search(backend, backend.tokenize(PROMPT), SearchSettings(simulations=3), observer=view)
    assert not view.enabled and console.file.getvalue() == ""


# -- what `ask` wires up ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "live,terminal,save,expect",
    [
        (True, True, False, ["LiveSearchView"]),
        (False, True, False, None),  # --no-live
        (True, False, False, None),  # stderr piped: nothing animated
        (True, False, True, ["TreeRecorder"]),  # piped but --save-tree: record only
        (True, True, True, ["LiveSearchView", "TreeRecorder"]),
    ],
)
def test_search_display_observers(monkeypatch, tmp_path, live, terminal, save, expect):
    from marco_cli.commands import _display
    from marco_cli.core.settings import Mode

    monkeypatch.setattr(_display, "err_console", lambda: Console(file=io.StringIO(), force_terminal=terminal))
    display = _display.SearchDisplay(
        mode=Mode.MCTS,
        settings=SearchSettings(),
        question="q",
        live=live,
        save_to=tmp_path / "t.json" if save else None,
    )
    with display.observe() as observer:
        names = None if observer is None else [type(o).__name__ for o in observer.observers]
    assert names == expect
    cot = _display.SearchDisplay(mode=Mode.COT, settings=SearchSettings(), question="q")
    with cot.observe() as observer:
        assert observer is None  # a chain of thought has no search to draw


def _longest_node_text(out: str) -> int:
    """Length of the longest node text (after the "n=.. q=.. c=.. " figures) in a drawn tree."""
    longest = 0
    for line in out.splitlines():
        if " c=" in line:
            longest = max(longest, len(line.split(" c=", 1)[1].split(" ", 1)[-1]))
    return longest


@pytest.mark.parametrize("width", [100, 160])
def test_final_folded_tree_uses_the_terminal_width(width):
    console = _terminal_console(height=40, width=width)
    backend = ScriptedBackend(thought_words=60)  # long steps, far wider than 48 characters
    settings = SearchSettings(simulations=3, action=Action.MINI_64)
    with LiveSearchView(console, simulations=3, title="q") as view:
        run_search(backend, backend.tokenize(PROMPT), settings, observer=view)
    final = console.file.getvalue().rsplit("\x1b[?25h", 1)[-1]  # what stays after the live view
    final = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", final)
    assert _longest_node_text(final) > 48
    assert _longest_node_text(final) >= width - 26 - 12  # minus the figures and a few tree guides
    assert max(len(line) for line in final.splitlines()) <= width


def test_replay_uses_the_terminal_width(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from marco_cli.cli import app
    from marco_cli.treefile.io import save_tree

    backend = ScriptedBackend(thought_words=60)
    result = run_search(backend, backend.tokenize(PROMPT), SearchSettings(simulations=3, action=Action.MINI_64))
    path = tmp_path / "t.json"
    save_tree(path, result, question="q", model="scripted", options={})
    widths = {}
    for columns in (80, 160):
        monkeypatch.setenv("COLUMNS", str(columns))
        out = CliRunner().invoke(app, ["replay", str(path)])
        assert out.exit_code == 0, out.stderr
        widths[columns] = _longest_node_text(out.stdout)
    assert widths[160] > widths[80] > 48


def test_mirror_counts_tokens_in_flight_until_the_phase_ends():
    from marco_cli.search.events import NodeCreated, TokensGenerated
    from marco_cli.ui.mirror import SearchMirror

    m = SearchMirror()
    m.apply(NodeCreated(0, None, 0, "", 0, None, False, False, None))
    version = m.version
    m.apply(TokensGenerated(16))
    assert (m.tokens, m.in_flight, m.version) == (0, 16, version)  # the tree drawing stays cached
    m.apply(NodeCreated(1, 0, 1, "step", 20, 0.9, False, False, None))
    assert (m.tokens, m.in_flight) == (20, 0)


@pytest.mark.parametrize("width", [100, 160])
def test_chat_tree_command_uses_the_terminal_width(width):
    from marco_cli.ui.slash import render_search

    backend = ScriptedBackend(thought_words=60)
    result = run_search(backend, backend.tokenize(PROMPT), SearchSettings(simulations=3, action=Action.MINI_64))
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(render_search(result))
    out = console.file.getvalue()
    assert _longest_node_text(out) >= width - 26 - 12  # minus the figures and a few tree guides
    assert max(len(line) for line in out.splitlines()) <= width
