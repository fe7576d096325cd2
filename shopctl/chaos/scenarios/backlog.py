"""9. Slow consumer and backlog: notification paused while orders flow, then resumed; memory stays bounded."""

from __future__ import annotations

import asyncio
import signal
import time

from notification_svc.consumers import GROUP as NOTIFICATION_GROUP
from shopctl.chaos import store
from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.procs import with_signal
from shopctl.chaos.recorder import Workload
from shopctl.chaos.scenarios.base import SUBSCRIPTIONS, Env, Scenario
from shoplib import catalogue
from shoplib.store import partitions

# Processed entries older than this are trimmed (low, so that trimming shows within the run).
RETAIN_MS = 1000
# Approximate trimming drops whole radix-tree nodes (100 entries each): after it, a stream keeps
# at most about one node of old entries. Twice that is the bound a stream must come down to.
TRIM_BOUND = 200
TRIM_WAIT_S = 10.0  # trimming runs every maintenance round (0.2 s): seconds are plenty


async def _streams(run: Run) -> dict[str, int]:
    return {stream: int(await run.client.xlen(stream)) for stream in store.every(store.ALL_STREAMS)}


async def _memory(run: Run) -> int:
    return int((await run.client.info("memory"))["used_memory"])


async def _lag(run: Run) -> int:
    """Entries of order-events (every partition) the notification group has not read yet."""
    unread = 0
    for stream in partitions.streams(catalogue.ORDER_EVENTS):
        for group in await store.groups(run.client, stream):
            if group["name"] == NOTIFICATION_GROUP:
                unread += len(await store.entries(run.client, stream, str(group["last-delivered-id"])))
    return unread


async def _trimmed(run: Run) -> dict[str, int]:
    """Wait (bounded) until every stream is down to TRIM_BOUND; returns the lengths seen last."""
    deadline = time.monotonic() + TRIM_WAIT_S
    while max((lengths := await _streams(run)).values()) > TRIM_BOUND and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    return lengths


async def backlog(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: trimming ignores what groups still have to read (trim_pending)."""
    faults = {"FAULTS": "trim_pending"} if control else {}
    async with env.run(env={"STREAM_RETAIN_MS": str(RETAIN_MS)}, per_service=dict.fromkeys(SUBSCRIPTIONS, faults)
                       ) as run:
        memory = {"before": await _memory(run)}
        notification = run.worker("notification")
        with_signal(notification.process, signal.SIGSTOP)
        run.fault("pause")
        try:
            load = run.recorder(Workload(env.sizes.backlog_orders))
            await load.run()
            lag = await _lag(run)
            await asyncio.sleep(RETAIN_MS / 1000 + 1)  # several maintenance rounds: what may be trimmed, is
            peak = await _streams(run)
            memory["peak"] = await _memory(run)
        finally:
            with_signal(notification.process, signal.SIGCONT)
        judgement, _ = await run.judge()
        after = await _trimmed(run)
        memory["after"] = await _memory(run)
        if over := {s: n for s, n in after.items() if n > TRIM_BOUND}:
            run.fail("memory", f"streams not trimmed to {TRIM_BOUND} entries after the drain: {over}")
        if lag:
            run.prove(f"notification paused while {env.sizes.backlog_orders} orders flowed: backlog {lag} entries")
        run.notes.update(backlog=lag, stream_lengths_peak=peak, stream_lengths_after=after, used_memory=memory)
        mib = {k: f"{v / 2**20:.1f}" for k, v in memory.items()}
        run.notes["summary"] = (f"used_memory MiB before {mib['before']}, at the backlog peak {mib['peak']}, "
                                f"after the drain and trimming {mib['after']}; stream lengths (all partitions) at the "
                                f"peak {_by_stream(peak)}, after {_by_stream(after)}")
        return sc.outcome(run, judgement, control)


def _by_stream(lengths: dict[str, int]) -> dict[str, int]:
    """Lengths summed over partitions, by stream: 48 partition streams are too many to read."""
    total: dict[str, int] = {}
    for name, length in lengths.items():
        total[partitions.base(name)] = total.get(partitions.base(name), 0) + length
    return total
