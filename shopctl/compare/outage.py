"""Payment down: the payment service stopped for a few seconds in the middle of an open-loop run.

Sync mode: which calls failed, with which code, how long their callers waited; then each failed
request is sent again with its idempotency key, as a client would. Events mode: every order
accepted, the payment group's backlog (peak, time to drain once payment is back), and in both
modes every order accounted for: none lost, none charged twice.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from typing import Any

from shopctl.compare import probes, restart
from shopctl.compare.accounting import account, ledger
from shopctl.compare.bench import Bench
from shopctl.load import Record, Run, Workload, drive, ms_summary, order_request, place
from shoplib.catalogue import ORDER_EVENTS

BUCKET_S = 1.0  # timeline resolution: orders per second
RETRIES_IN_FLIGHT = 16  # sync mode: failed requests sent again this many at a time


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def _caught_up(bench: Bench, origin: float) -> float | None:
    """When the payment group next has neither lag nor pending (None: not within the bound)."""
    deadline = time.monotonic() + bench.sizes.drain_timeout_s
    while time.monotonic() < deadline:
        lag, pending = await probes.group_backlog(bench.redis, ORDER_EVENTS, probes.PAYMENT_GROUP)
        if lag + pending == 0:
            return round(time.monotonic() - origin, 3)
        await asyncio.sleep(probes.QUIET_POLL_S)
    return None


async def _fault(bench: Bench, origin: float, marks: dict[str, float | None]) -> None:
    """Stop the payment service at down_at_s, start it again down_for_s later, note when things happened."""
    def since() -> float:
        return round(time.monotonic() - origin, 3)

    await _sleep_until(origin + bench.sizes.down_at_s)
    marks["stop"] = since()
    await restart.stop(bench.stack, "payment")
    marks["stopped"] = since()
    await _sleep_until(origin + bench.sizes.down_at_s + bench.sizes.down_for_s)
    marks["start"] = since()
    restart.start(bench.stack, "payment")
    caught_up = asyncio.create_task(_caught_up(bench, origin))  # from the start: it may beat SERVING
    await restart.until_serving(bench.stack, "payment")
    marks["serving"] = since()
    marks["caught_up"] = await caught_up


async def _retry_failed(bench: Bench, run: Run) -> tuple[list[Record], int]:
    """Send every failed request again with its own idempotency key (what a careful client does).
    Also returns how many of those orders the service had already charged on its own by then."""
    slots, retried, charged = asyncio.Semaphore(RETRIES_IN_FLIGHT), [], await ledger(bench.redis)

    async def again(failed: Record) -> None:
        record = Record(failed.key, failed.declined, time.monotonic(), time.time())
        retried.append(record)
        async with slots:
            await place(bench.gateway, order_request(record, run.workload.mode), record)

    await asyncio.gather(*(again(r) for r in run.records if r.code != "OK"))
    return retried, sum(1 for r in retried if charged[r.order_id])


def _per_second(times: list[float], end: float) -> list[int]:
    counts = Counter(int(t // BUCKET_S) for t in times)
    return [counts.get(i, 0) for i in range(math.ceil(end / BUCKET_S))]


def timeline(run: Run, origin: float, trace: probes.BacklogTrace) -> dict[str, Any]:
    ok = [r for r in run.records if r.code == "OK"]
    end = max([r.end - origin for r in run.records] + [t for t, _, _ in trace]) + BUCKET_S
    return {"bucket_s": BUCKET_S,
            "accepted": _per_second([r.end - origin for r in ok], end),
            "failed": _per_second([r.end - origin for r in run.records if r.code != "OK"], end),
            "completed": _per_second([r.settled - origin for r in ok if r.settled is not None], end),
            "backlog": [[t, lag, pending] for t, lag, pending in trace]}


def _after_restart(marks: dict[str, float | None], moment: float | None) -> float | None:
    """Seconds from the payment process being started again to `moment`."""
    start = marks.get("start")
    return None if moment is None or start is None else round(moment - start, 3)


def _findings(mode: str, run: Run, origin: float, marks: dict[str, float | None], trace: probes.BacklogTrace,
              retried: list[Record]) -> dict[str, Any]:
    failed = [r for r in run.records if r.code != "OK"]
    accepted = [r for r in run.records if r.code == "OK"]
    return {
        "placed": len(run.records), "accepted": len(accepted), "failed": dict(Counter(r.code for r in failed)),
        "failed_wait_ms": ms_summary([r.end - r.start for r in failed]),
        "accept_ms": ms_summary([r.end - r.start for r in accepted]),
        "to_terminal_ms": ms_summary([r.settled - r.start for r in accepted if r.settled is not None]),
        "marks": marks, "backlog_peak": trace.peak(), "start_up_s": _after_restart(marks, marks.get("serving")),
        "drain_s": _after_restart(marks, marks.get("caught_up")) if mode == "events" else None,
        "last_failure_s": _after_restart(marks, max((r.end - origin for r in failed), default=None)),
        "retried": {"requests": len(retried), "recovered": sum(r.code == "OK" for r in retried),
                    "errors": dict(Counter(r.code for r in retried if r.code != "OK"))},
        "timeline": timeline(run, origin, trace)}


async def _one_mode(bench: Bench, mode: str) -> dict[str, Any]:
    sizes = bench.sizes
    marks: dict[str, float | None] = {}
    run = Run(Workload(mode, duration_s=sizes.down_run_s, rate=sizes.rate, follow=True,
                       follow_timeout_s=sizes.drain_timeout_s + sizes.down_run_s))
    origin = time.monotonic()
    label = f"payment down {mode:<6} ({sizes.down_for_s:g} s at {sizes.down_at_s:g} s)"
    bench.journal.append((label, run))
    async with probes.backlog_sampler(bench.redis, origin) as trace, bench.progress.step(label, run):
        await asyncio.gather(drive(bench.gateway, run), _fault(bench, origin, marks))
    await probes.drained(bench.redis, sizes.drain_timeout_s)
    retried, charged_before = await _retry_failed(bench, run) if mode == "sync" else ([], 0)
    bench.journal.append((f"payment down {mode} retries", Run(run.workload, records=retried)))
    final = {r.key: r for r in retried}  # a failed request counts by its retry's answer
    checked = await account([final.get(r.key, r) for r in run.records], bench.gateway, bench.redis)
    found = _findings(mode, run, origin, marks, trace, retried)
    found["retried"]["charged_before_retry"] = charged_before
    return {**found, "accounting": checked.as_dict()}


async def payment_down(bench: Bench) -> dict[str, Any]:
    found = {mode: await _one_mode(bench, mode) for mode in ("sync", "events")}
    return {"rate": bench.sizes.rate, "down_at_s": bench.sizes.down_at_s, "down_for_s": bench.sizes.down_for_s,
            "run_s": bench.sizes.down_run_s, **found}
