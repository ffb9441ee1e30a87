"""The thread governor: which llama.cpp thread count it settles on, and what
its tries cost, on scripted decode times (a fake clock), plus the settings
and notices around it. ``test_llama_backend.py`` checks on the real model
that switching counts changes no token."""

from __future__ import annotations

import pytest

from marco_cli.backends.threads import ThreadGovernor, candidates, one_token_threads, starting_count
from marco_cli.core.errors import UsageError
from marco_cli.core.machine import usable_cpus
from marco_cli.core.settings import RuntimeSettings


class Machine:
    """Decode seconds per thread count, changeable mid-run; a fake clock."""

    def __init__(self, costs: dict[int, float]) -> None:
        self.costs = dict(costs)
        self.now = 0.0
        self.threads: int | None = None
        self.spent = 0.0

    def clock(self) -> float:
        return self.now

    def set_threads(self, n: int) -> None:
        self.threads = n

    def run(self, size: int = 3) -> int:
        assert self.threads is not None
        cost = self.costs[self.threads] * size
        self.now += cost
        self.spent += cost
        return 0


def governed(machine: Machine, choices: list[int], start: int) -> ThreadGovernor:
    gov = ThreadGovernor(choices, start, clock=machine.clock)
    gov.attach(machine.set_threads, -1)
    return gov


def decode_many(gov: ThreadGovernor, machine: Machine, n: int, size: int = 3) -> None:
    for _ in range(n):
        assert gov.decode(lambda: machine.run(size), size) == 0


def test_candidates_and_start():
    assert candidates(1) == [1]
    assert candidates(2) == [2, 1]
    assert candidates(8) == [8, 7, 4, 1]
    assert starting_count([8, 7, 4, 1], None) == 8
    assert starting_count([8, 7, 4, 1], 7.2) == 7
    assert starting_count([2, 1], 0.3) == 1
    assert starting_count([2, 1], 1.6) == 2


def test_idle_machine_keeps_all_cores_and_tries_cost_little():
    m = Machine({2: 1.0, 1: 1.7})
    gov = governed(m, [2, 1], 2)
    decode_many(gov, m, 2000)
    assert gov.current == 2
    assert gov.tries >= 2  # it kept checking
    assert m.spent <= 2000 * 3 * 1.0 * 1.03  # 3 tokens a decode


def test_busy_core_moves_to_one_thread_and_stays_within_ten_percent():
    m = Machine({2: 6.0, 1: 1.0})  # one core busy: two threads collapse
    gov = governed(m, [2, 1], 2)
    decode_many(gov, m, 2000)
    assert gov.current == 1
    assert m.spent <= 2000 * 3 * 1.0 * 1.1


def test_starting_on_one_thread_finds_the_faster_count():
    m = Machine({2: 1.0, 1: 1.7})
    gov = governed(m, [2, 1], 1)
    decode_many(gov, m, 50)
    assert gov.current == 2


def test_follows_the_load_as_it_comes_and_goes():
    m = Machine({2: 1.0, 1: 1.7})
    gov = governed(m, [2, 1], 2)
    decode_many(gov, m, 200)
    assert gov.current == 2
    m.costs[2] = 12.0  # another program starts
    decode_many(gov, m, 200)
    assert gov.current == 1
    m.costs[2] = 1.0  # and ends
    decode_many(gov, m, 3000)
    assert gov.current == 2


def test_compares_only_decodes_of_the_same_size():
    # Sizes alternate; per-token cost is equal, so a try must not win or lose
    # by comparing a big decode with a small one.
    m = Machine({2: 1.0, 1: 1.0})
    gov = governed(m, [2, 1], 2)
    for i in range(400):
        size = 2 if i % 2 else 8
        gov.decode(lambda size=size: m.run(size), size)
    assert gov.switches == 0


def test_fixed_count_never_changes():
    m = Machine({3: 5.0, 1: 1.0})
    gov = ThreadGovernor.fixed(3)
    gov.attach(m.set_threads, -1)
    decode_many(gov, m, 100)
    assert m.threads == 3 and gov.tries == 0


def test_threads_setting_flag_env_cap_and_errors(monkeypatch):
    monkeypatch.delenv("MARCO_THREADS", raising=False)
    assert RuntimeSettings().threads is None  # marco chooses
    assert RuntimeSettings().threads_notice() is None
    monkeypatch.setenv("MARCO_THREADS", "1")
    assert RuntimeSettings().threads == 1
    assert RuntimeSettings(n_threads=1).threads == 1
    cpus = usable_cpus()
    monkeypatch.setenv("MARCO_THREADS", "999")
    assert RuntimeSettings().threads == cpus
    assert RuntimeSettings().threads_notice() == f"MARCO_THREADS 999 is more than the {cpus} CPUs here; using {cpus}"
    assert RuntimeSettings(n_threads=999).threads_notice().startswith("--threads 999 is more than")
    for bad in ("zero", "0", "-2"):
        monkeypatch.setenv("MARCO_THREADS", bad)
        with pytest.raises(UsageError, match="MARCO_THREADS must be"):
            _ = RuntimeSettings().threads
    with pytest.raises(
        UsageError, match="threads must be > 0"
    ):  # the setting's own (neutral) wording; the CLI adds "--"
        RuntimeSettings(n_threads=-1)


def test_one_token_decodes_keep_one_fixed_count():
    # Their attention rounds differently per thread count once the cache is
    # big, so they never change count: a seed gives one answer.
    m = Machine({2: 6.0, 1: 1.0})
    gov = governed(m, [2, 1], 1)
    used = []
    for _ in range(200):
        gov.decode(lambda: used.append(m.threads) or m.run(1), 1)
    assert set(used) == {2} and gov.tries == 0
    decode_many(gov, m, 20)  # batches are governed and stay on the fast count
    assert gov.current == 1


def test_one_token_count_follows_the_model_size_never_the_clock():
    gib = 1 << 30
    assert one_token_threads(8, 4 * gib) == 8  # a 7B: every core helps
    assert one_token_threads(8, 100 << 20) == 1  # a 135M: barriers cost more than a core gives
    assert one_token_threads(8, 100 << 20, offloaded=True) == 8
    small = ThreadGovernor.automatic(2, weights_bytes=400 << 20)
    big = ThreadGovernor.automatic(2, weights_bytes=5 * gib)
    assert (small.single, big.single) == (1, 2)
    assert small.choices == big.choices == [2, 1]  # batches are governed either way
    assert ThreadGovernor.fixed(3).single == 3  # --threads fixes both
