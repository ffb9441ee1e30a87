"""How many CPU threads llama.cpp decodes with: chosen while it runs.

Why not a fixed count: ggml splits each operation of a decode across its
threads and waits at a barrier after it, hundreds of times per token. A
thread that loses its core to another program stalls every other thread at
the next barrier, so the all-core count that is fastest on an idle machine
collapses as soon as anything else runs (BENCHMARKS.md, "Speed": several
times slower than one thread with one core kept busy). No count chosen at
start suits both cases, and a laptop changes between them all the time.

What instead: ``ThreadGovernor`` times every ``llama_decode`` and keeps the
count that is fastest now. Now and then it tries another count on the next
decodes and takes it when that is clearly faster on decodes of the same
size. A losing try is stopped after one decode, and the next try of that
count waits until the time it cost is at most ``OVERHEAD`` of the decode
time since, so a collapsing count costs a few percent at worst. Time is
counted in decode seconds: when the current count collapses, tries of the
others come sooner by the same factor.

Seeds stay reproducible: in a decode of two or more tokens every output
element is computed by one thread, so the count changes nothing, and only
those decodes are governed. A decode of ONE token (a single stream, or a
wave thinned to one row) is different: once the cache holds 512 cells,
ggml's flash attention splits the cells among the threads and merges the
parts, so its rounding depends on the count. Those decodes run with
``single`` threads, fixed for the whole run by the model's size (never a
clock, so a seed keeps giving one answer): all physical cores for weights of
``ALL_CORES_FROM_BYTES`` or more, one thread below. A small model's token is
so little work per operation that the barrier waits cost more than a second
core gives: on two idle cores, one greedy stream took 2.1x the time of one
thread on SmolLM2-135M and 1.07x on Qwen2.5-0.5B (BENCHMARKS.md, "Speed").
libgomp's passive waiting keeps the all-core case from collapsing. Tests
check both.

OpenMP: llama.cpp built with OpenMP (the default with GCC) waits at its
barriers in libgomp, which spins up to ~300,000 rounds before it sleeps;
with a core taken by another program, two threads then measured 5-30x
slower than one. Waiting passively (sleep at once, woken by the last
thread) removed the collapse (BENCHMARKS.md, "Speed"). libgomp reads its
settings once, when it loads, so ``configure_openmp`` runs before
``llama_cpp`` is imported. Builds without OpenMP use ggml's own barrier,
which always spins: there the governor alone keeps the count safe.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from ..core.machine import physical_cores

OVERHEAD = 0.02
"""Most of the decode time that losing tries may cost."""

SWITCH_BELOW = 0.9
"""A tried count takes over when its decode takes under this share of the current one's."""

ABORT_ABOVE = 1.25
"""A try that takes more than this share of the current count's time ends at once."""

FIRST_TRY_AFTER = 3
"""Decodes of one size timed with the current count before any other is tried."""

MIN_WAIT = 16
"""Decodes (of the last size) before a count that tied is tried again."""

MAX_TRY_DECODES = 3
"""Decodes a try may take to meet one whose size has a reference time."""

OMP_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

ALL_CORES_FROM_BYTES = 1 << 30
"""Weights from which one-token decodes use all physical cores (module docstring)."""


def one_token_threads(cores: int, weights_bytes: int, *, offloaded: bool = False) -> int:
    """The fixed count of one-token decodes: all cores for a model big enough
    (or offloaded, where the CPU only feeds the GPU), one for a small one."""
    return cores if offloaded or weights_bytes >= ALL_CORES_FROM_BYTES else 1


def configure_openmp() -> None:
    """Make libgomp wait passively, before llama_cpp loads it; the user's
    own OpenMP settings win."""
    if not any(name in os.environ for name in OMP_SETTINGS):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def candidates(cores: int) -> list[int]:
    """Counts worth trying on ``cores`` cores: all of them, all but one (one
    busy program then costs a core, not the barrier), half, and one."""
    return sorted({1, max(1, cores // 2), max(1, cores - 1), cores}, reverse=True)


def idle_cpus(window: float = 0.05) -> float | None:
    """CPUs left idle during ``window`` seconds, from ``/proc/stat``; None
    where the system does not say."""

    def sample() -> tuple[int, int]:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        values = [int(v) for v in fields[:8]]
        return values[3] + values[4], sum(values)  # idle + iowait, all

    try:
        idle0, total0 = sample()
        time.sleep(window)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)


def starting_count(choices: Sequence[int], idle: float | None) -> int:
    """The largest candidate the idle CPUs can hold (this process is not yet
    busy, so it counts among the idle); the largest when nobody says."""
    if idle is None:
        return choices[0]
    fitting = [c for c in choices if c <= idle + 0.5]
    return max(fitting) if fitting else min(choices)


class ThreadGovernor:
    """``governor.decode(run, size)`` runs ``run()`` (one llama_decode) with the
    thread count it chooses and returns its result; ``size`` (tokens in the
    batch) says which earlier decodes are comparable. ``attach`` tells it how
    to set the count on the context."""

    def __init__(
        self,
        choices: Sequence[int],
        start: int,
        *,
        single: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._set_threads: Callable[[int], None] = lambda n: None
        self.choices = list(choices)
        self.single = max(self.choices) if single is None else single  # one-token decodes (see above)
        self.current = start
        self._clock = clock
        self._applied: int | None = None
        self._refs: dict[int, deque[float]] = {}  # size -> recent times at the current count
        self._spent = 0.0  # decode seconds so far (the governor's clock)
        self._due = {c: 0.0 for c in self.choices if c != start}  # when each other count may be tried
        self._trial: int | None = None
        self._trial_ratios: list[float] = []
        self._trial_decodes = 0
        self.switches = 0
        self.tries = 0

    @classmethod
    def fixed(cls, threads: int) -> ThreadGovernor:
        """A governor that never changes ``threads`` (``--threads``, MARCO_THREADS)."""
        return cls([threads], threads)

    @classmethod
    def automatic(
        cls, cores: int | None = None, *, weights_bytes: int = ALL_CORES_FROM_BYTES, offloaded: bool = False
    ) -> ThreadGovernor:
        """Choose among ``candidates(cores)`` (physical cores by default),
        starting with what the CPUs idle at this moment can hold; one-token
        decodes get ``one_token_threads`` for a model of ``weights_bytes``."""
        cores = physical_cores() if cores is None else cores
        choices = candidates(cores)
        start = starting_count(choices, idle_cpus() if len(choices) > 1 else None)
        return cls(choices, start, single=one_token_threads(cores, weights_bytes, offloaded=offloaded))

    def attach(self, set_threads: Callable[[int], None], applied: int) -> None:
        """Drive a context created with ``applied`` threads."""
        self._set_threads = set_threads
        self._applied = applied

    @property
    def threads(self) -> int:
        """The count decodes run with now."""
        return self.current

    def decode(self, run: Callable[[], int], size: int) -> int:
        governed = self._trial if self._trial is not None else self.current
        threads = self.single if size == 1 else governed  # one token: fixed (module docstring)
        if threads != self._applied:
            self._set_threads(threads)
            self._applied = threads
        started = self._clock()
        result = run()
        elapsed = self._clock() - started
        self._spent += elapsed
        if len(self.choices) > 1 and size > 1:
            if self._trial is None:
                self._timed_current(size, elapsed)
            else:
                self._timed_trial(size, elapsed)
        return result

    # -- bookkeeping ---------------------------------------------------------

    def _reference(self, size: int) -> float | None:
        times = self._refs.get(size)
        if not times or len(times) < FIRST_TRY_AFTER:
            return None
        return sorted(times)[len(times) // 2]

    def _timed_current(self, size: int, elapsed: float) -> None:
        times = self._refs.get(size)
        if times is None:
            if len(self._refs) >= 64:  # sizes come and go; keep the recent ones
                self._refs.pop(next(iter(self._refs)))
            times = self._refs[size] = deque(maxlen=3)
        times.append(elapsed)
        if self._reference(size) is None:
            return
        due = [c for c, at in self._due.items() if at <= self._spent]
        if due:
            self._trial = min(due, key=lambda c: self._due[c])
            self._trial_ratios = []
            self._trial_decodes = 0
            self.tries += 1

    def _timed_trial(self, size: int, elapsed: float) -> None:
        assert self._trial is not None
        self._trial_decodes += 1
        ref = self._reference(size)
        if ref is not None and ref > 0:
            self._trial_ratios.append(elapsed / ref)
        ratios = self._trial_ratios
        lost = bool(ratios) and ratios[-1] > ABORT_ABOVE
        done = lost or len(ratios) >= 2 or self._trial_decodes >= MAX_TRY_DECODES
        if not done:
            return
        trial, self._trial = self._trial, None
        if not ratios:  # never met a comparable decode: try again later
            self._due[trial] = self._spent
            return
        best = min(ratios)
        if not lost and best < SWITCH_BELOW:
            old, self.current = self.current, trial
            del self._due[trial]
            self._due[old] = self._spent  # the old count may be tried right away
            self._refs.clear()
            self.switches += 1
            return
        # The lost try's cost in decode seconds, spread over OVERHEAD of the
        # time to come; a near tie waits MIN_WAIT decodes.
        ref = elapsed / ratios[-1]
        excess = max(0.0, ratios[-1] - 1.0) * ref * self._trial_decodes
        self._due[trial] = self._spent + max(excess / OVERHEAD, MIN_WAIT * ref)
