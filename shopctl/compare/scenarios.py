"""The steady scenarios: mode check, warm-up, latency by requests in flight, time to outcome, payment slow.

Modes alternate within each scenario (sync then events, then events then sync, ...) so that
machine noise hits both alike, and after every step the streams are left to drain, so that one
mode's deferred work never runs during the other's measurement.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import types_pb2

from shopctl.compare import probes, restart
from shopctl.compare.accounting import account
from shopctl.compare.bench import Bench
from shopctl.load import MODES, PAID_LINE, Record, Run, Workload, drive, ms_summary, place, summary

ORDER = tuple(MODES)  # ("sync", "events")
SYNC_PATH_TRIES = 50  # after a payment restart: sync orders tried until one goes through...
SYNC_PATH_PAUSE_S = 0.1  # ...this far apart (the order service's channel reconnects with backoff)


@dataclass
class Step:
    run: Run
    cpu_s: dict[str, float]  # per process name, and the whole machine's (probes.MACHINE)
    drain_s: float
    wall_s: float


def interleaved(rounds: int) -> list[tuple[int, str]]:
    return [(r, mode) for r in range(rounds) for mode in (ORDER if r % 2 == 0 else ORDER[::-1])]


async def measured(bench: Bench, workload: Workload, label: str) -> Step:
    """Drive one workload, wait until every group caught up, and note the CPU spent meanwhile."""
    run, before, started = Run(workload), probes.cpu_sample(bench.stack), time.monotonic()
    bench.journal.append((label, run))
    async with bench.progress.step(label, run):
        await drive(bench.gateway, run)
        drain = await probes.drained(bench.redis, bench.sizes.drain_timeout_s)
    spent = probes.cpu_spent(before, probes.cpu_sample(bench.stack))
    return Step(run, spent, drain, time.monotonic() - started)


def records(steps: list[Step]) -> list[Record]:
    return [record for step in steps for record in step.run.records]


async def mode_check(bench: Bench) -> dict[str, Any]:
    """Issue item 1: one order per requested mode; the mode the gateway answered and stored."""
    default = bench.stack.service_env("gateway").get("DEFAULT_FLOW_MODE") or "sync"
    found: dict[str, Any] = {"default": default.lower()}
    for name, mode in (("unspecified", types_pb2.FLOW_MODE_UNSPECIFIED), *MODES.items()):
        reply = await bench.gateway.PlaceOrder(gw.PlaceOrderRequest(
            idempotency_key=f"mode-check-{uuid.uuid4().hex[:12]}", customer_id="cust-check", lines=[PAID_LINE],
            mode=mode), timeout=10)
        stored = await bench.gateway.GetOrder(gw.GetOrderRequest(order_id=reply.order.order_id), timeout=10)
        found[name] = {"answered": types_pb2.FlowMode.Name(reply.order.mode),
                       "stored": types_pb2.FlowMode.Name(stored.order.mode)}
    wanted = {"unspecified": MODES[str(found["default"])], **MODES}
    found["ok"] = all(found[n] == {"answered": types_pb2.FlowMode.Name(m), "stored": types_pb2.FlowMode.Name(m)}
                      for n, m in wanted.items())
    await probes.drained(bench.redis, bench.sizes.drain_timeout_s)
    return found


async def warm_up(bench: Bench) -> None:
    for mode in ORDER:
        await measured(bench, Workload(mode, concurrency=16, duration_s=bench.sizes.warm_up_s), f"warm-up {mode}")


def _cpu_per_order(steps: list[Step]) -> dict[str, float]:
    """CPU ms per accepted order of each process (total: services and Redis), and what the rest of the
    machine used meanwhile."""
    orders = sum(1 for r in records(steps) if r.code == "OK") or 1
    spent: dict[str, float] = defaultdict(float)
    for step in steps:
        for name, seconds in step.cpu_s.items():
            spent[name] += seconds
    machine = spent.pop(probes.MACHINE, 0.0)
    per_order = {name: round(seconds * 1000 / orders, 3) for name, seconds in sorted(spent.items())}
    services = sum(ms for name, ms in per_order.items() if name != "client")  # the load generator is no service
    return {**per_order, "total": round(services, 3),
            "other_processes_cpu_s": round(max(0.0, machine - sum(spent.values())), 1),
            "wall_s": round(sum(step.wall_s for step in steps), 1)}


def _latency_row(mode: str, level: int, steps: list[Step]) -> dict[str, Any]:
    elapsed = sum(s.run.elapsed_s for s in steps)
    row = summary(records(steps), elapsed, mode)
    drains = [s.drain_s for s in steps]
    settled_window = elapsed + sum(drains)
    row.update(in_flight=level, drain_s=[round(d, 2) for d in drains],
               settled_per_s=round(int(row["ok"]) / settled_window, 1) if settled_window else 0.0)
    del row["settled"], row["to_terminal_ms"]
    return row


async def latency(bench: Bench) -> dict[str, Any]:
    """Closed loop at each level of requests in flight: client-observed PlaceOrder latency."""
    steps: dict[tuple[str, int], list[Step]] = defaultdict(list)
    for level in bench.sizes.levels:
        for r, mode in interleaved(bench.sizes.rounds):
            label = f"latency {mode:<6} {level:>2} in flight, round {r + 1}/{bench.sizes.rounds}"
            workload = Workload(mode, concurrency=level, duration_s=bench.sizes.round_s)
            steps[(mode, level)].append(await measured(bench, workload, label))
    by_mode = {mode: [s for (m, _), found in steps.items() if m == mode for s in found] for mode in ORDER}
    accounting = {mode: (await account(records(by_mode[mode]), bench.gateway, bench.redis)).as_dict()
                  for mode in ORDER}
    return {"rows": [_latency_row(mode, level, found) for (mode, level), found in sorted(steps.items())],
            "cpu_ms_per_order": {mode: _cpu_per_order(by_mode[mode]) for mode in ORDER}, "accounting": accounting}


async def outcome(bench: Bench, label: str) -> dict[str, Any]:
    """Open loop at a fixed rate, every order followed to its outcome: acceptance vs outcome times."""
    steps: dict[str, list[Step]] = defaultdict(list)
    for r, mode in interleaved(bench.sizes.rounds):
        workload = Workload(mode, duration_s=bench.sizes.outcome_s, rate=bench.sizes.rate, follow=True,
                            follow_timeout_s=bench.sizes.drain_timeout_s)
        steps[mode].append(await measured(bench, workload, f"{label} {mode:<6} round {r + 1}/{bench.sizes.rounds}"))
    rows = []
    for mode in ORDER:
        found = records(steps[mode])
        checked = await account(found, bench.gateway, bench.redis, bench.notifier)
        receipts = [checked.receipts[r.order_id] - r.wall for r in found if r.order_id in checked.receipts]
        row = summary(found, sum(s.run.elapsed_s for s in steps[mode]), mode)
        row.update(to_receipt_ms=ms_summary(receipts), accounting=checked.as_dict())
        rows.append(row)
    return {"rate": bench.sizes.rate, "rows": rows}


async def restart_payment(bench: Bench, delay_ms: int | None) -> None:
    """Restart the payment service with PAYMENT_DELAY_MS (None: unset), then wait for the sync path."""
    await restart.restart(bench.stack, "payment", {"PAYMENT_DELAY_MS": None if delay_ms is None else str(delay_ms)})
    await sync_path_open(bench)


async def sync_path_open(bench: Bench) -> int:
    """Tries until a sync order goes through end to end (bounded); returns the tries it took."""
    run = Run(Workload("sync"))
    for tries in range(1, SYNC_PATH_TRIES + 1):
        request, record = run.request()
        await place(bench.gateway, request, record)
        if record.code == "OK":
            return tries
        await asyncio.sleep(SYNC_PATH_PAUSE_S)
    raise RuntimeError("the sync path did not recover after restarting the payment service")


async def payment_slow(bench: Bench) -> dict[str, Any]:
    """The outcome scenario again, with PAYMENT_DELAY_MS injected in the payment handler."""
    delay = bench.sizes.delay_ms
    bench.progress.say(f"restarting the payment service with PAYMENT_DELAY_MS={delay}")
    await restart_payment(bench, delay)
    try:
        found = await outcome(bench, f"payment slow {delay} ms")
    finally:
        bench.progress.say("restarting the payment service without delay")
        await restart_payment(bench, None)
    return {"delay_ms": delay, **found}
