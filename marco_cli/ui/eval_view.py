"""``marco eval`` on the terminal: the results table (a pure function of the
summaries) and the progress bar observer (stderr, only when it is a terminal)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..evaluation.stats import ModeSummary


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def results_table(summaries: Sequence[ModeSummary], *, title: str | None = None) -> Table:
    """Accuracy with its 95 % interval, test@k (k: samples per question), cost
    per question (all of its samples), accuracy points per 1000 of those
    tokens, and the paired difference from the first mode (percentage points)."""
    base = summaries[0].mode if summaries else ""
    table = Table(title=title, title_justify="left")
    headers = ("mode", "n", "k", "acc %", "95% CI", "test@k %", "tokens/q", "s/q", "acc/1k tok", f"Δ vs {base}")
    for header in headers:
        table.add_column(header, justify="left" if header == "mode" else "right")
    for s in summaries:
        table.add_row(
            s.mode,
            str(s.questions),
            str(s.k),
            _pct(s.accuracy) if s.questions else "-",
            f"{_pct(s.ci_low)}-{_pct(s.ci_high)}" if s.questions else "-",
            _pct(s.test_at_k) if s.questions else "-",
            f"{s.tokens_per_question:.0f}",
            f"{s.seconds_per_question:.1f}",
            f"{s.accuracy_per_1k_tokens:.2f}" if s.questions else "-",
            "" if s.diff is None else f"{100 * s.diff:+.1f} pp",
        )
    return table


def print_table(console: Console, table: Table) -> None:
    """A pipe gets the whole table (Rich would squeeze it into 80 columns)."""
    if not console.is_terminal:
        console.width = max(console.width, 120)
    console.print(table)


class EvalProgress:
    """A Rich progress bar on stderr with the running score of each mode."""

    def __init__(self, console: Console, modes: Sequence[str]) -> None:
        self.console = console
        self.score = {m: [0, 0] for m in modes}  # mode -> [correct, answered] in this run
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: Any = None

    def _describe(self, current: str = "") -> str:
        scores = "  ".join(f"{m} {c}/{n}" for m, (c, n) in self.score.items() if n)
        return " ".join(part for part in (current, scores) if part) or "evaluating"

    def on_start(self, pending: int, done: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(self._describe(), total=pending + done, completed=done)

    def on_row(self, row: dict[str, Any], problem: Any, answer: Any) -> None:
        score = self.score[row["mode"]]
        score[0] += bool(row["correct"])
        score[1] += 1
        self.progress.update(self.task, advance=1, description=self._describe())

    def on_finish(self) -> None:
        self.progress.stop()
