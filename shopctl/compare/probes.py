"""What the comparison reads besides the answers: CPU time of each process and the streams' backlog."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shopctl.stack import Stack
from shoplib import catalogue
from shoplib.store import connections, partitions
from shoplib.streams import status
from shoplib.streams.settings import DEAD_LETTERS

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STREAMS = (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS)  # the ones with consumer groups
PAYMENT_GROUP = "payment-service-group"
SAMPLE_S = 0.1  # backlog sampling period: fine enough to see a few seconds of outage rise and fall
QUIET_POLL_S = 0.05  # how often "has every group caught up?" is asked while waiting for it
Cpu = dict[tuple[str, int], float]  # (process name, pid) -> CPU seconds
MACHINE = "machine"  # the whole machine's busy CPU seconds, beside the processes' own


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_sample(stack: Stack) -> Cpu:
    """CPU seconds so far of every service, Redis, and this client process."""
    pids = {name: process.pid for name, process in stack.processes.items() if process.poll() is None}
    if stack.redis is not None and stack.redis.process is not None:
        pids["redis"] = stack.redis.process.pid
    sample = {(name, pid): cpu_seconds(pid) for name, pid in pids.items()}
    times = os.times()
    sample[("client", os.getpid())] = times.user + times.system
    sample[(MACHINE, 0)] = machine_busy_seconds()
    return sample


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes, all cores), from /proc/stat."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def cpu_spent(before: Cpu, after: Cpu) -> dict[str, float]:
    """Seconds per process name between two samples (a process restarted in between is left out)."""
    return {name: after[(name, pid)] - spent for (name, pid), spent in before.items() if (name, pid) in after}


async def group_backlog(client: aioredis.Redis, stream: str, group: str) -> tuple[int, int]:
    """(lag, pending) over every partition of `stream`: entries not yet delivered to the group,
    and delivered but not acknowledged."""
    lag = pending = 0
    for one in partitions.streams(stream):
        more = await _group_backlog(client, one, group)
        lag, pending = lag + more[0], pending + more[1]
    return lag, pending


async def _group_backlog(client: aioredis.Redis, stream: str, group: str) -> tuple[int, int]:
    try:
        groups = await client.xinfo_groups(stream)
    except ResponseError:
        return 0, 0  # no stream yet
    for info in groups:
        if _s(info["name"]) == group:
            return await _lag(client, stream, info), int(info["pending"])
    return 0, 0


async def _lag(client: aioredis.Redis, stream: str, info: dict[str, Any]) -> int:
    if info.get("lag") is not None:
        return int(info["lag"])
    after = f"({_s(info['last-delivered-id'])}"  # Redis cannot say (deletions): count what follows
    return len(await client.xrange(stream, min=after, max="+", count=100_000) or [])


async def total_backlog(client: aioredis.Redis) -> int:
    """lag + pending over every group of every stream: 0 when all work in flight is done."""
    total = 0
    for stream in (one for base in STREAMS for one in partitions.streams(base)):
        try:
            groups = await client.xinfo_groups(stream)
        except ResponseError:
            continue
        for info in groups:
            total += await _lag(client, stream, info) + int(info["pending"])
    return total


async def wait_quiet(client: aioredis.Redis, timeout_s: float) -> float | None:
    """Seconds until every group caught up (None when it did not within `timeout_s`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await total_backlog(client) == 0:
            return time.monotonic() - started
        await asyncio.sleep(QUIET_POLL_S)
    return None


class Stalled(RuntimeError):
    """The streams did not drain in time: a consumer is dead or stuck; measuring on is pointless."""


async def drained(client: aioredis.Redis, timeout_s: float) -> float:
    """Like wait_quiet, but a backlog that outlives the bound stops the comparison with the streams' view."""
    took = await wait_quiet(client, timeout_s)
    if took is None:
        view = status.render(*await status.collect(client))
        raise Stalled(f"the streams did not drain within {timeout_s:g} s:\n{view}")
    return took


async def dead_letters(client: aioredis.Redis) -> int:
    return sum([int(await client.xlen(letters)) for letters in partitions.streams(DEAD_LETTERS)])


@dataclass
class BacklogTrace:
    """(seconds since `origin`, lag, pending) of the payment group on order-catalogue."""

    origin: float
    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def peak(self) -> int:
        return max((lag + pending for _, lag, pending in self.samples), default=0)

    def __iter__(self) -> Iterator[tuple[float, int, int]]:
        return iter(self.samples)


@asynccontextmanager
async def backlog_sampler(client: aioredis.Redis, origin: float) -> AsyncIterator[BacklogTrace]:
    trace = BacklogTrace(origin)

    done = asyncio.Event()

    async def sample() -> None:
        # Stops on `done`, and on a cancellation redis-py did not swallow (one that lands while a
        # command is on the wire is lost: this loop then sampled for ever and `make compare` hung).
        while not done.is_set():
            lag, pending = await group_backlog(client, catalogue.ORDER_EVENTS, PAYMENT_GROUP)
            trace.samples.append((round(time.monotonic() - origin, 3), lag, pending))
            connections.stop_if_cancelled()
            await asyncio.sleep(SAMPLE_S)

    task = asyncio.create_task(sample())
    try:
        yield trace
    finally:
        done.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
