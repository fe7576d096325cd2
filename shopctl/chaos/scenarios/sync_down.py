"""8. Dependency down in sync mode: payment is SIGKILLed during a sync run, then started again."""

from __future__ import annotations

import asyncio

from shop.v1 import types_pb2

from shopctl.chaos import store
from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.procs import kill
from shopctl.chaos.recorder import Recorder, Workload
from shopctl.chaos.scenarios.base import Env, Scenario, during_load
from shopctl.load import TERMINAL

# A sync call's deadline, and how late a loaded machine may report it ended (scheduling, not design).
CALL_TIMEOUT_S = 3.0
LATE_SLACK_S = 1.5
# Every failure is UNAVAILABLE; a DEADLINE_EXCEEDED would mean a call hung on the dead dependency.
CODES = frozenset({"OK", "UNAVAILABLE"})
DOWN_AT = 0.25
# A caller whose order failed waits this long before its next one (a client backs off).
PAUSE_AFTER_FAILURE_S = 0.3
RETRY_ATTEMPTS = 4


async def _outage(run: Run, load: Recorder, orders: int, down_s: float) -> None:
    if not await load.until(DOWN_AT * orders):
        return
    await kill(run.worker("payment"))
    run.fault("payment_down")
    await asyncio.sleep(down_s)
    run.notes["pending_at_recovery"] = await store.pending_orders(run.client, types_pb2.FLOW_MODE_SYNC)
    await run.restart("payment")


async def _retry_half(load: Recorder) -> tuple[int, list[str]]:
    """After recovery, every other failed key is placed again (same key, the usual backoff on
    UNAVAILABLE while channels reconnect): it must get the finished order."""
    failed = sorted({r.key: r for r in load.records if r.code != "OK"}.values(), key=lambda r: r.key)[::2]
    problems = []
    for first in failed:
        again = await load.place(first.key, first.declined, attempts=RETRY_ATTEMPTS)
        if again.code != "OK" or again.status not in TERMINAL:
            problems.append(f"{first.key}: {again.code} {again.status}")
    return len(failed), problems


async def sync_dependency_down(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: the reconciler is off (no_resume) and nobody retries: interrupted orders stay PENDING."""
    sizes = env.sizes
    async with env.run(per_service={"order": {"FAULTS": "no_resume"} if control else {}}) as run:
        load = run.recorder(Workload(sizes.sync_orders, mode="sync", concurrency=16, timeout_s=CALL_TIMEOUT_S,
                                     attempts=1, pause_s=PAUSE_AFTER_FAILURE_S))
        await asyncio.gather(load.run(), during_load(load, _outage(run, load, sizes.sync_orders, sizes.sync_down_s)))
        retried, retry_problems = (0, []) if control else await _retry_half(load)
        judgement, _ = await run.judge(allowed_codes=CODES)
        if retry_problems:
            run.fail("retry", f"retries with the same key did not finish the order: {retry_problems[:3]}")
        late = [r for r in load.records if r.end - r.start > CALL_TIMEOUT_S + LATE_SLACK_S]
        if late:
            run.fail("deadline", f"{len(late)} calls outlived their {CALL_TIMEOUT_S}s deadline")
        unavailable = sum(1 for r in load.records if r.code == "UNAVAILABLE")
        interrupted = run.notes.get("pending_at_recovery", 0)
        if run.faults["payment_down"] and unavailable and interrupted:
            run.prove(f"payment down {sizes.sync_down_s}s: {unavailable} calls UNAVAILABLE, {interrupted} orders "
                      f"left PENDING")
        run.notes["retried_after_recovery"] = retried
        run.notes["summary"] = (f"{interrupted} sync orders left PENDING by the outage; {retried} retried by their "
                                f"caller with the same key, the rest left to the reconciler")
        return sc.outcome(run, judgement, control)
