"""CPU seconds of our processes (from /proc), per call between two snapshots, and how much CPU
the rest of this shared machine took while a phase ran."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from typing import ClassVar

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        after_comm = stat.read().rsplit(")", 1)[1].split()
    return int(after_comm[11]) / _CLK_TCK, int(after_comm[12]) / _CLK_TCK


def cpu_s(pid: int) -> float:
    return sum(cpu_times(pid))


def cpu_all(pids: Mapping[str, int]) -> dict[str, float]:
    return {name: cpu_s(pid) for name, pid in pids.items()}


def per_call(before: dict[str, float], after: dict[str, float], calls: int) -> dict[str, float]:
    """CPU ms per call of each process between two `cpu_all` snapshots."""
    return {name: (after[name] - before[name]) * 1000 / calls if calls else float("nan") for name in before}


def machine_busy_s() -> float:
    """CPU seconds all processes of this machine have used so far (/proc/stat, first line)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


class Others:
    """How much CPU processes other than ours took while a phase ran: this machine is shared,
    and a busy neighbour changes every figure."""

    phases: ClassVar[list[tuple[str, float]]] = []  # (phase, cores used by others on average)

    def __init__(self, phase: str, pids: list[int]) -> None:
        self.phase, self.pids = phase, pids

    def __enter__(self) -> Others:
        self._t0, self._all0 = time.monotonic(), machine_busy_s()
        self._ours0 = sum(cpu_s(pid) for pid in self.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            ours = sum(cpu_s(pid) for pid in self.pids) - self._ours0
            elapsed = time.monotonic() - self._t0
            Others.phases.append((self.phase, max(0.0, machine_busy_s() - self._all0 - ours) / elapsed))
