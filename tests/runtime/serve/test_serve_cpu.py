"""The CPU thread policy: cgroup limits, the kernel's counters, and the governor's decisions."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from kaito_runtime.serve.cpu import CpuBudget, ThreadGovernor, affinity, cgroup_cpu_limit, read_busy_ticks

HEADER = "cpu  0 0 0 0 0 0 0 0 0 0\n"


def _stat(path: Path, busy: dict[int, int], idle: int = 1000) -> None:
    """A /proc/stat in the kernel's format: `busy` ticks split over user/system/steal, per CPU."""
    lines = [HEADER]
    for cpu, ticks in sorted(busy.items()):
        user, system, steal = ticks // 2, ticks // 4, ticks - ticks // 2 - ticks // 4
        lines.append(f"cpu{cpu} {user} 0 {system} {idle} 7 0 0 {steal} 0 0\n")
    lines.append("intr 12345 0 0\nctxt 999\nbtime 1700000000\nprocs_running 1\n")
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "250000 100000\n"}, 2.5),
        ({"cpu.max": "50000 100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu,cpuacct/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({"cpu.max": "garbage\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_cpu_limit_reads_v2_and_v1(
    tmp_path: Path, files: dict[str, str], expected: float | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == expected


@pytest.mark.parametrize(
    ("cpus", "limit", "max_threads", "usable", "governed", "initial"),
    [
        (4, None, 0, 4, True, 3),
        (4, 2.5, 0, 3, False, 2),  # a quota narrower than the CPUs: fixed at the limit minus one
        (4, 8.0, 0, 4, True, 3),  # a quota wider than the CPUs changes nothing
        (8, None, 4, 4, True, 3),  # torch's default (physical cores) caps it
        (1, None, 0, 1, True, 1),
        (2, 0.5, 0, 1, False, 1),
        (2, 1.5, 0, 2, False, 1),  # a fractional quota: a second thread would be throttled every period
    ],
)
def test_budget(
    cpus: int, limit: float | None, max_threads: int, usable: int, governed: bool, initial: int
) -> None:
    budget = CpuBudget(frozenset(range(cpus)), limit, max_threads)
    assert (budget.usable, budget.governed, budget.initial_threads()) == (usable, governed, initial)


def test_busy_ticks_count_only_our_cpus_and_busy_columns(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    _stat(stat, {0: 100, 1: 40, 2: 999})
    assert read_busy_ticks(frozenset({0, 1}), stat) == 140  # idle, iowait and cpu2 are not counted
    assert read_busy_ticks(frozenset(), stat) == 0


class _Machine:
    """A clock, this process's CPU time and a /proc/stat file that the test advances."""

    def __init__(self, path: Path, cpus: int) -> None:
        self.path, self.cpus = path, cpus
        self.now, self.own, self.ticks = 0.0, 0.0, dict.fromkeys(range(cpus), 0)
        self.applied: list[int] = []
        _stat(path, self.ticks)

    def advance(self, seconds: float, own_cores: float, other_cores: float) -> None:
        self.now += seconds
        self.own += own_cores * seconds
        per_cpu = (own_cores + other_cores) * seconds * 100 / self.cpus  # USER_HZ 100
        self.ticks = {c: t + round(per_cpu) for c, t in self.ticks.items()}
        _stat(self.path, self.ticks)

    def governor(self) -> ThreadGovernor:
        gov = ThreadGovernor(
            CpuBudget(frozenset(range(self.cpus)), None),
            stat=self.path,
            clock=lambda: self.now,
            own_cpu=lambda: self.own,
            apply=self.applied.append,
        )
        gov.hz = 100
        return gov


def _at_two_threads(tmp_path: Path) -> tuple[_Machine, ThreadGovernor]:
    """A 2-CPU machine whose governor has stepped up to 2 threads after two quiet readings."""
    m = _Machine(tmp_path / "stat", 2)
    gov = m.governor()
    for _ in range(2):
        m.advance(1.0, own_cores=1.0, other_cores=0.0)
        gov.tick()
    assert gov.threads == 2
    return m, gov


def test_governor_uses_every_core_on_a_quiet_host_after_two_quiet_readings(tmp_path: Path) -> None:
    m = _Machine(tmp_path / "stat", 2)
    gov = m.governor()
    assert gov.threads == 1  # all but one until something is measured
    m.advance(0.1, own_cores=1.0, other_cores=0.0)
    assert gov.tick() == 1 and m.applied == []  # not a full interval yet: nothing is read
    m.advance(0.6, own_cores=1.0, other_cores=0.05)
    assert gov.tick() == 1  # one quiet reading is not enough
    m.advance(1.0, own_cores=1.1, other_cores=0.1)
    assert gov.tick() == 2 and m.applied == [2]
    assert gov.others == pytest.approx(0.1, abs=0.02)


def test_governor_steps_down_at_once_when_another_process_takes_a_core(tmp_path: Path) -> None:
    m, gov = _at_two_threads(tmp_path)
    m.advance(1.0, own_cores=1.3, other_cores=0.7)  # a saturated host, a third of it someone else's
    assert gov.tick() == 1 and m.applied == [2, 1]
    # It stays down while the other load stays, and a single quiet second does not bring it back.
    m.advance(1.0, own_cores=1.0, other_cores=1.0)
    assert gov.tick() == 1
    m.advance(1.0, own_cores=1.0, other_cores=0.0)
    assert gov.tick() == 1
    m.advance(1.0, own_cores=1.0, other_cores=0.5)  # a half-busy core is not a free one
    assert gov.tick() == 1
    assert m.applied == [2, 1]


def test_governor_does_not_judge_a_window_the_engine_slept_through(tmp_path: Path) -> None:
    m, gov = _at_two_threads(tmp_path)
    gov.pause()
    m.advance(5.0, own_cores=0.0, other_cores=2.0)  # another server's burst while this one was idle
    assert gov.tick() == 2  # the window restarts here
    m.advance(0.5, own_cores=2.0, other_cores=0.0)
    assert gov.tick() == 2 and m.applied == [2]
    gov.pause()
    m.advance(1.0, own_cores=0.0, other_cores=0.0)
    gov.tick()
    m.advance(0.5, own_cores=1.2, other_cores=0.8)  # but load that arrives while it works counts
    assert gov.tick() == 1 and m.applied == [2, 1]


@pytest.mark.parametrize("content", [None, "cpu0 not numbers\n"])
def test_governor_without_readable_counters_keeps_its_starting_count(
    tmp_path: Path, content: str | None
) -> None:
    stat = tmp_path / "stat"
    if content is not None:
        stat.write_text(content)
    clock = iter(range(100))
    gov = ThreadGovernor(CpuBudget(frozenset({0, 1}), None), stat=stat, clock=lambda: float(next(clock)))
    assert not gov.readable
    assert [gov.tick() for _ in range(5)] == [1] * 5


def test_governor_is_fixed_under_a_narrower_cgroup_limit(tmp_path: Path) -> None:
    m = _Machine(tmp_path / "stat", 4)
    gov = ThreadGovernor(CpuBudget(frozenset(range(4)), 2.0), stat=m.path, clock=lambda: m.now,
                         own_cpu=lambda: m.own, apply=m.applied.append)  # fmt: skip
    for _ in range(4):
        m.advance(1.0, own_cores=1.0, other_cores=0.0)
        assert gov.tick() == 1
    assert m.applied == []


SPIN = "import time\nend = time.monotonic() + 4\nwhile time.monotonic() < end:\n    pass\n"


def test_governor_sees_a_real_busy_process_on_our_cpus() -> None:
    """The kernel's own counters: a child spinning on each of our CPUs but one is load that is not ours."""
    cpus = sorted(affinity())
    gov = ThreadGovernor(CpuBudget(frozenset(cpus), None), interval=0.0)
    hogs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in cpus]
    try:
        time.sleep(1.0)  # the children are up and spinning
        gov.tick()  # reset the reading window
        time.sleep(1.5)
        gov.tick()
    finally:
        for hog in hogs:
            hog.wait(10)
    # Every CPU we may use had a spinning process on it; we were asleep.
    assert gov.others > 0.6 * len(cpus)
    assert gov.threads == 1
