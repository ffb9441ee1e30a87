"""Progress for commands that work through many lines (``marco translate``).

A Rich progress bar on stderr when stderr is a terminal; plain lines when it
is not, so a log file or a pipe gets no escape codes and no redraws. Messages
printed while the bar is shown go through the bar's console, which prints them
above the bar instead of tearing it.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .console import err_console


class LineProgress:
    def __init__(
        self,
        total: int,
        *,
        live: bool,
        stdout_is_terminal: bool = False,
        what: str = "lines",
        label: str = "translating",
    ) -> None:
        """``live``: draw (caller checks that stderr is a terminal). One unit
        gets a spinner only; several get a bar with counts and an ETA.

        ``stdout_is_terminal``: stdout and the bar share one screen, so results
        written to stdout are passed through Rich, which prints them above the
        bar; otherwise they would land in the middle of the bar's line. When
        stdout is a pipe or a file it is left strictly alone."""
        self.total = total
        self._progress: Progress | None = None
        if live and total > 0:
            columns = [SpinnerColumn(), TextColumn(label)]
            if total > 1:
                columns += [BarColumn(), MofNCompleteColumn(), TextColumn(what), TimeRemainingColumn()]
            columns.append(TimeElapsedColumn())
            self._progress = Progress(
                *columns,
                console=err_console(),
                transient=True,
                redirect_stdout=stdout_is_terminal,
                redirect_stderr=False,
            )
            self._task = self._progress.add_task(label, total=total)

    def __enter__(self) -> LineProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def log(self, message: str) -> None:
        """One line on stderr (a warning or a per-line error)."""
        if self._progress is not None:
            self._progress.console.print(Text(message))
        else:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    def thought(self, header: str, text: str) -> None:
        """A reasoning block on stderr, dimmed on a terminal."""
        if self._progress is not None:
            self._progress.console.print(Text(header, style="bold"))
            self._progress.console.print(Text(text, style="dim"))
        else:
            sys.stderr.write(f"{header}\n{text}\n")
            sys.stderr.flush()
