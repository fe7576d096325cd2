"""13. A group lost while others trim: payment paused, its group on order-events destroyed, orders
placed meanwhile and left past the retention while the other services trim; then payment resumes."""

from __future__ import annotations

import asyncio
import signal
import time

from shopctl.chaos import store
from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.procs import with_signal
from shopctl.chaos.recorder import Recorder, Workload
from shopctl.chaos.scenarios.base import Env, Scenario
from shoplib import catalogue
from shoplib.store import partitions
from shoplib.streams.topology import PAYMENT_GROUP

# Processed entries older than this may be trimmed (low, so that the pause outlives it).
RETAIN_MS = 1000
PAUSE_AT = 0.3  # of the orders: the rest are placed while the group is missing
# After the last order of the pause: the retention plus several maintenance rounds (0.2 s each),
# so that every entry placed while the group was missing is old enough for any trim to take it.
PAST_RETENTION_S = RETAIN_MS / 1000 + 1.5
# Trimming services of order-events (topology: its consumers); the control's switch goes on both.
TRIMMERS = ("notification", "payment")


async def _group_exists(run: Run) -> bool:
    return all([any(g["name"] == PAYMENT_GROUP for g in await store.groups(run.client, stream))
                for stream in partitions.streams(catalogue.ORDER_EVENTS)])


async def _lengths(run: Run) -> int:
    return sum([int(await run.client.xlen(stream)) for stream in partitions.streams(catalogue.ORDER_EVENTS)])


async def _lose_group(run: Run, load: Recorder, orders: int) -> dict[str, object]:
    """Pause payment, destroy its group (its blocked read fails NOGROUP on resume), let the rest of
    the orders be placed and age past the retention, then resume it."""
    if not await load.until(PAUSE_AT * orders):
        return {}
    payment = run.worker("payment")
    with_signal(payment.process, signal.SIGSTOP)
    try:
        destroyed = sum([int(await run.client.xgroup_destroy(stream, PAYMENT_GROUP))
                         for stream in partitions.streams(catalogue.ORDER_EVENTS)])  # in every partition
        run.fault("group_destroyed", destroyed)
        at, length = time.monotonic(), await _lengths(run)
        await load.finished.wait()
        await asyncio.sleep(PAST_RETENTION_S)
        placed = sum(1 for r in load.records if r.code == "OK" and r.start >= at)
        return {"destroyed": destroyed, "placed_while_missing": placed, "paused_s": round(time.monotonic() - at, 1),
                "length_at_destroy": length, "length_at_resume": await _lengths(run),
                "recreated_before_resume": await _group_exists(run)}
    finally:
        with_signal(payment.process, signal.SIGCONT)


async def group_lost_while_trimming(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: trimming looks only at the groups that exist (trim_ignores_topology): what the
    missing group never read is trimmed, and its orders wait for a re-drive."""
    faults = {"FAULTS": "trim_ignores_topology"} if control else {}
    orders = env.sizes.grouplost_orders
    async with env.run(env={"STREAM_RETAIN_MS": str(RETAIN_MS)}, per_service=dict.fromkeys(TRIMMERS, faults)) as run:
        started = dict(run.pids)
        load = run.recorder(Workload(orders))
        lost, _ = await asyncio.gather(_lose_group(run, load, orders), load.run())
        judgement, _ = await run.judge()
        judgement.failures += run.restarts(started)
        if lost.get("destroyed") and lost.get("placed_while_missing"):
            run.prove(f"payment paused and {PAYMENT_GROUP} destroyed on {catalogue.ORDER_EVENTS}; "
                      f"{lost['placed_while_missing']} orders placed while it was missing, left {lost['paused_s']}s "
                      f"(retention {RETAIN_MS} ms) while the others trimmed; group recreated before the resume: "
                      f"{lost['recreated_before_resume']}")
        run.notes.update(lost)
        return sc.outcome(run, judgement, control)
