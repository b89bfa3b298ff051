"""How many torch threads a CPU-only server should run, decided from what the machine lets it use.

Two facts decide it, both measured on the bench model (BENCHMARKS.md, `serve`):

- On an idle 2-core host, running torch on every core beats leaving one to the HTTP event loop by
  28-30 % at one stream and 20-37 % at 16 streams: the event loop needs little CPU.
- When something else holds a core, OpenMP workers that share it stall each other at every
  barrier, and a decode step slows 5-20x (Kaito's anchors fell to 2-5 tokens/s). All cores but
  one then holds up (64-66 tokens/s).

So the engine thread asks a `ThreadGovernor` between steps. Four times a second it reads the
kernel's per-CPU counters for the CPUs this process may run on (/proc/stat) and this process's own
CPU time. What is busy and not ours is someone else's, and the governor runs as many threads as
there are cores nobody else is using (at least one). It steps down at once and back up only after
two quiet readings in a row, so it does not flap. A reading only ever spans time the engine was
working: when it goes idle (`pause()`), the next window starts afresh, so another server's burst
while this one slept is not held against it. It measures what the kernel already counts; it
never tries a thread count to see how it goes (a probe on a busy host costs a stalled step).

A cgroup CPU limit (Kubernetes `resources.limits.cpu`, cgroup v2 `cpu.max` or v1 CFS quota) caps
the count. Under such a limit the process floats across more cores than it may use, so the other
processes seen on them say nothing about its share; the count is then fixed at the limit minus
one, as before. An explicit OMP_NUM_THREADS always wins and turns all of this off.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# /proc/stat columns after the cpu name: user nice system idle iowait irq softirq steal guest guest_nice.
# Busy = everything but idle and iowait; guest time is already inside user.
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup's quota (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`), or None if unlimited."""
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        if quota != "max":
            return int(quota) / int(period or "100000")
        return None
    except (OSError, ValueError):
        pass
    for base in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            quota_us = int((base / "cpu.cfs_quota_us").read_text())
            period_us = int((base / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    return None


def affinity() -> frozenset[int]:
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class CpuBudget:
    cpus: frozenset[int]  # the CPUs this process may run on
    limit: float | None  # the cgroup's CPU quota, if any
    max_threads: int = 0  # torch's default (physical cores); 0: no cap beyond the CPUs

    @property
    def usable(self) -> int:
        """Cores this process can keep busy: its CPUs, capped by the quota (rounded up) and torch's default."""
        n = len(self.cpus)
        if self.limit is not None:
            n = min(n, math.ceil(self.limit))
        if self.max_threads:
            n = min(n, self.max_threads)
        return max(1, n)

    @property
    def governed(self) -> bool:
        """Whether the other load on our CPUs tells us anything (no quota narrower than them)."""
        # A fractional quota (1.5 CPUs on 2) throttles a second thread every period: not governed.
        return self.limit is None or self.limit >= len(self.cpus)

    @classmethod
    def detect(cls, max_threads: int = 0) -> CpuBudget:
        return cls(affinity(), cgroup_cpu_limit(), max_threads)

    def initial_threads(self) -> int:
        """Before anything is measured: all usable cores but one (the safe side on a busy host)."""
        return max(1, self.usable - 1)


def read_busy_ticks(cpus: frozenset[int], stat: Path = Path("/proc/stat")) -> int:
    """Busy clock ticks (USER_HZ) summed over `cpus`, from the kernel's per-CPU counters."""
    total = 0
    for line in stat.read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        try:
            index = int(name[3:])
        except ValueError:
            continue
        if index in cpus:
            total += sum(int(fields[i]) for i in _BUSY_COLUMNS if i < len(fields))
    return total


class ThreadGovernor:
    """Picks the torch thread count from the other load on this process's CPUs (see the module doc).

    `tick()` is cheap between readings (one clock call); call it from the thread that runs torch
    (the engine thread): OpenMP's thread count is per calling thread. Call `pause()` when that
    thread is about to wait for work.
    """

    def __init__(
        self,
        budget: CpuBudget,
        *,
        interval: float = 0.25,
        stat: Path = Path("/proc/stat"),
        clock: Callable[[], float] = time.monotonic,
        own_cpu: Callable[[], float] = time.process_time,
        apply: Callable[[int], None] | None = None,
    ) -> None:
        self.budget = budget
        self.interval = interval
        self.stat = stat
        self.clock = clock
        self.own_cpu = own_cpu
        self.apply = apply or _set_torch_threads
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.threads = budget.initial_threads()
        self.others = 0.0  # cores' worth of other processes' load at the last reading
        self._quiet = 0
        self._stale = False
        # No readable per-CPU counters (not Linux, a locked-down /proc): stay at the starting count.
        self.readable = True
        self._last = (self.clock(), 0.0, 0)
        self._resample()

    def _resample(self) -> bool:
        try:
            self._last = self._sample()
        except (OSError, ValueError, IndexError):
            self.readable = False
        return self.readable

    def pause(self) -> None:
        """The engine is going idle: the window up to its next tick says nothing about it."""
        self._stale = True

    def _sample(self) -> tuple[float, float, int]:
        return self.clock(), self.own_cpu(), read_busy_ticks(self.budget.cpus, self.stat)

    def tick(self) -> int:
        """Re-decide at most once per interval; returns the current thread count."""
        if not self.budget.governed or not self.readable:
            return self.threads
        if self._stale:
            self._stale = False
            self._resample()
            return self.threads
        if self.clock() - self._last[0] < self.interval:
            return self.threads
        last = self._last
        if not self._resample():
            return self.threads
        now = self._last
        wall = now[0] - last[0]
        own = now[1] - last[1]
        busy = (now[2] - last[2]) / self.hz
        if wall <= 0:
            return self.threads
        self.others = max(0.0, (busy - own) / wall)
        self._decide(self.budget.usable - self.others)
        return self.threads

    def _decide(self, free: float) -> None:
        # A core counts as free when others take less than a third of it.
        want = max(1, min(self.budget.usable, math.floor(free + 1 / 3)))
        if want < self.threads:
            self._quiet = 0
            self._set(want)
        elif want > self.threads:
            self._quiet += 1
            if self._quiet >= 2:
                self._quiet = 0
                self._set(self.threads + 1)
        else:
            self._quiet = 0

    def _set(self, threads: int) -> None:
        self.threads = threads
        self.apply(threads)


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
