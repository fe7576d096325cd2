"""17. Wall-clock steps (issue 19, case 1): under a sync load, payment is SIGSTOPped, orders pile up
PENDING, every service's wall clock steps back an hour (libfaketime, shopctl.faketime), payment is
continued; then the same with a step forward to an hour ahead.

Checked besides the usual end state: the orders left PENDING by each stop are resumed within a
reconciler round of their due time (`stuck` otherwise: a back step on a wall-clock comparison
strands them for an hour), and none is resumed before it is due (`early`: a forward step on a
wall-clock comparison resumes every order at once; only orders placed during the stop are judged,
so leftovers of an earlier stop that are due are not counted). Control: FAULTS=process_clock in the order
service, the reconciler's wall-clock comparison of before issue 19.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import cast

import redis.asyncio as aioredis
from shop.v1 import types_pb2

from order_svc.adapters import pending_key
from order_svc.reconciler import INTERVAL_S
from shopctl import faketime
from shopctl.chaos import store
from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.procs import with_signal
from shopctl.chaos.recorder import Recorder, Workload
from shopctl.chaos.scenarios.base import Env, Scenario, during_load
from shoplib.store import partitions

ORDERS = {"full": 600, "quick": 150, "control": 100}
HOUR_S = 3600
# Due time of a sync order left PENDING: longer than payment stays stopped plus a reconciler round
# after the step, so any resume while payment is stopped is an early one.
RESUME_AFTER_MS = 10_000
CALL_TIMEOUT_S = 2.0  # each sync PlaceOrder: with payment stopped, the order is stored, then the deadline
STOPPED_S = 3.0  # payment stopped this long before the step: orders are placed and left PENDING
AFTER_STEP_S = INTERVAL_S + 1.0  # and this long after it: a reconciler round on the stepped clock
# The interrupted orders are resumed within this of their due time: a reconciler round, the chain's
# calls, and a margin for a loaded 2-core host.
RESUME_SLACK_S = INTERVAL_S + 13.0
START_AT = 0.2  # of the orders answered before the first stop
POLL_S = 0.2
assert STOPPED_S + AFTER_STEP_S < RESUME_AFTER_MS / 1000, "an order placed during the stop is not due before it ends"


async def _pending_ids(client: aioredis.Redis) -> set[str]:
    keys = [pending_key(types_pb2.FLOW_MODE_SYNC, p) for p in partitions.every()]
    return {store.s(m) for key in keys for m in cast("list[bytes]", await client.zrange(key, 0, -1))}


def _early(run: Run, before: int, older: set[str]) -> list[str]:
    """Orders resumed (logged since line `before`) that were not listed PENDING when payment was
    stopped: placed during the stop, so younger than the window (STOPPED_S + AFTER_STEP_S, shorter
    than RESUME_AFTER_MS) and not due yet. One-sided, and on no clock but the window's own: the
    orders listed before (the leftovers of an earlier stop, due or not) are never counted."""
    resumed = [str(event.get("order_id", "")) for _, event in run.logged("order.resuming")[before:]]
    return [order_id for order_id in resumed if order_id not in older]


async def _stopped_step(run: Run, offset: Path, offset_s: int) -> tuple[set[str], float, list[str]]:
    """Payment stopped, orders left PENDING, the clocks stepped, a reconciler round, payment
    continued: (the orders left PENDING, when the stop began, the early resumes while it lasted)."""
    worker = run.worker("payment")
    stopped_at, before = time.monotonic(), len(run.logged("order.resuming"))
    with_signal(worker.process, signal.SIGSTOP)
    try:
        older = await _pending_ids(run.client)
        await asyncio.sleep(STOPPED_S)
        faketime.step(offset, offset_s)
        run.fault("clock_back" if offset_s < 0 else "clock_forward")
        await asyncio.sleep(AFTER_STEP_S)
        left = await _pending_ids(run.client)
        early = _early(run, before, older)
    finally:
        with_signal(worker.process, signal.SIGCONT)
    return left, stopped_at, early


async def _resumed_in_time(run: Run, left: set[str], stopped_at: float) -> bool:
    """Every order left PENDING by the stop is off the pending list by its due time plus the slack."""
    deadline = stopped_at + STOPPED_S + CALL_TIMEOUT_S + RESUME_AFTER_MS / 1000 + RESUME_SLACK_S
    while left & await _pending_ids(run.client):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True


async def _steps(run: Run, load: Recorder, orders: int, offset: Path) -> None:
    if not await load.until(START_AT * orders):
        return
    for offset_s in (-HOUR_S, +HOUR_S):  # back an hour, then forward to an hour ahead
        left, stopped_at, early = await _stopped_step(run, offset, offset_s)
        run.notes[f"pending_at_step_{offset_s:+d}s"] = len(left)
        run.notes[f"early_resumes_{offset_s:+d}s"] = len(early)
        if left:
            run.prove(f"{len(left)} sync orders PENDING while every service's wall clock stepped {offset_s:+d}s")
        if early:
            run.fail("early", f"{len(early)} sync orders placed while payment was stopped resumed before their "
                              f"due time ({RESUME_AFTER_MS} ms) after a {offset_s:+d}s step, e.g. {early[:3]}")
        if not await _resumed_in_time(run, left, stopped_at):
            still = len(left & await _pending_ids(run.client))
            run.fail("stuck", f"{still} of {len(left)} sync orders still PENDING {RESUME_SLACK_S:.0f}s past their due "
                              f"time after a {offset_s:+d}s wall-clock step")


async def clock_steps(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: process_clock (the order service compares due times on its own wall clock)."""
    orders = ORDERS[env.sizes.name]
    env.log_dir.mkdir(parents=True, exist_ok=True)
    offset = env.log_dir / "clock-offset"
    # unbuffered: the resumes are counted from the order service's log while it runs
    async with env.run(env={**faketime.env(offset), "ORDER_RESUME_AFTER_MS": str(RESUME_AFTER_MS),
                            "PYTHONUNBUFFERED": "1"},
                       per_service={"order": {"FAULTS": "process_clock"} if control else {}}) as run:
        load = run.recorder(Workload(orders, mode="sync", concurrency=8, timeout_s=CALL_TIMEOUT_S, attempts=1))
        await asyncio.gather(load.run(), during_load(load, _steps(run, load, orders, offset)))
        judgement, _ = await run.judge()
        run.notes["summary"] = (f"sync orders under load; payment stopped twice, every service's wall clock stepped "
                                f"{-HOUR_S:+d}s then to {HOUR_S:+d}s; resume due after {RESUME_AFTER_MS} ms")
        return sc.outcome(run, judgement, control)
