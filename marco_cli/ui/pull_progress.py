"""Showing a pull's progress on stderr: a Rich bar (size, speed, ETA) on a
terminal, plain periodic lines otherwise (logs and CI have no use for a bar
redrawn in place). Both take ``PullProgress`` events; neither touches stdout."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..models.download import Phase, PullProgress
from .console import err_console, is_tty


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"  # unreachable; keeps type checkers calm


class RichPullDisplay:
    """One bar for the download, one for the sha256 check."""

    def __init__(self, label: str, console: Console | None = None) -> None:
        self.label = label
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console or err_console(),
            transient=False,
        )
        self._tasks: dict[Phase, TaskID] = {}
        self._started = False

    def __call__(self, event: PullProgress) -> None:
        if event.phase not in (Phase.DOWNLOADING, Phase.VERIFYING):
            return
        if not self._started:
            self._progress.start()
            self._started = True
        task = self._tasks.get(event.phase)
        if task is None:
            what = "pulling" if event.phase is Phase.DOWNLOADING else "verifying sha256"
            task = self._progress.add_task(f"{what} {self.label}", total=event.total, completed=event.done)
            self._tasks[event.phase] = task
        self._progress.update(task, completed=event.done, total=event.total)

    def close(self) -> None:
        if self._started:
            self._started = False
            self._progress.stop()


class PlainPullDisplay:
    """A line when a phase starts, then one every ``every`` seconds, e.g.
    ``marco: pulling marco-o1:Q4_K_M: 45% (2.10 GB of 4.68 GB) at 23.40 MB/s, about 1m50s left``."""

    def __init__(
        self, label: str, stream: TextIO | None = None, every: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.label = label
        self._stream = stream or sys.stderr
        self._every = every
        self._clock = clock
        self._phase: Phase | None = None
        self._phase_start = (0.0, 0)  # (time, bytes) when the phase began
        self._last_line = 0.0

    def __call__(self, event: PullProgress) -> None:
        if event.phase not in (Phase.DOWNLOADING, Phase.VERIFYING):
            return
        now = self._clock()
        if event.phase is not self._phase:
            self._phase, self._phase_start, self._last_line = event.phase, (now, event.done), now
            self._write(self._opening(event))
        elif now - self._last_line >= self._every or (event.total and event.done >= event.total):
            self._last_line = now
            self._write(self._status(event, now))

    def _opening(self, event: PullProgress) -> str:
        if event.phase is Phase.VERIFYING:
            return f"verifying sha256 of {self.label}"
        size = f" ({human_bytes(event.total)})" if event.total else ""
        resumed = f", resuming at {human_bytes(event.resumed_from)}" if event.resumed_from else ""
        return f"pulling {self.label}{size} from {event.source}{resumed}"

    def _status(self, event: PullProgress, now: float) -> str:
        verb = "pulling" if event.phase is Phase.DOWNLOADING else "verifying"
        done = human_bytes(event.done)
        if not event.total:
            return f"{verb} {self.label}: {done}"
        line = f"{verb} {self.label}: {100 * event.done // event.total}% ({done} of {human_bytes(event.total)})"
        start_time, start_bytes = self._phase_start
        elapsed, moved = now - start_time, event.done - start_bytes
        if elapsed > 0 and moved > 0 and event.done < event.total:
            rate = moved / elapsed
            line += f" at {human_bytes(rate)}/s, about {_duration((event.total - event.done) / rate)} left"
        return line

    def _write(self, line: str) -> None:
        self._stream.write(f"marco: {line}\n")
        self._stream.flush()

    def close(self) -> None:
        return None


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def pull_display(label: str) -> RichPullDisplay | PlainPullDisplay:
    return RichPullDisplay(label) if is_tty(sys.stderr) else PlainPullDisplay(label)
