"""Runs the whole comparison on one stack: warm up, then each scenario, then the report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import notification_service_pb2_grpc as nt_grpc

from shopctl.compare import breakdown, budgets, charts, outage, probes, report, scenarios
from shopctl.compare.bench import FULL, QUICK, Bench, Sizes
from shopctl.compare.progress import Progress
from shopctl.compare.watchdog import Expired, Watchdog
from shopctl.stack import Stack

# The stack's settings for the run, recorded in the report. Services log at WARNING: per-order
# INFO lines would cost CPU in proportion to each mode's number of hops, not to its design.
STACK_ENV = {"LOG_LEVEL": "WARNING"}


# Settings that change what is measured, recorded with the results when set in the environment.
RECORDED_ENV = ("STREAM_", "PAYMENT_", "DEFAULT_FLOW_MODE", "LOG_", "FAULTS")
WIRING_ENV = ("_ADDR", "_PORT")  # addresses and ports: how the stack is wired, not what it measures


async def _bounded(dog: Watchdog, bench: Bench, phase: str, scenario: Callable[[Bench], Awaitable[Any]]) -> Any:
    with dog.phase(phase, budgets.bound_s(phase, bench.sizes)):
        return await scenario(bench)


async def _scenarios(bench: Bench, dog: Watchdog) -> dict[str, Any]:
    results: dict[str, Any] = {"mode_check": await _bounded(dog, bench, "mode check", scenarios.mode_check)}
    await _bounded(dog, bench, "warm-up", scenarios.warm_up)
    results["latency"] = await _bounded(dog, bench, "latency", scenarios.latency)
    results["outcome"] = await _bounded(dog, bench, "time to outcome", lambda b: scenarios.outcome(b, "outcome"))
    results["payment_slow"] = await _bounded(dog, bench, "payment slow", scenarios.payment_slow)
    results["payment_down"] = await _bounded(dog, bench, "payment down", outage.payment_down)
    results["dead_letters"] = await _bounded(dog, bench, "dead letters", lambda b: probes.dead_letters(b.redis))
    return results


async def _run(stack: Stack, sizes: Sizes, progress: Progress, dog: Watchdog) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(stack.address("gateway")) as gateway, \
            grpc.aio.insecure_channel(stack.address("notification")) as notifier:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            bench = Bench(stack, sizes, gw_grpc.GatewayServiceStub(gateway),
                          nt_grpc.NotificationServiceStub(notifier), client, progress)
            return {**await _scenarios(bench, dog), "journal": bench.journal}
        finally:
            await client.aclose()


def _settings(sizes: Sizes, stack: Stack) -> dict[str, Any]:
    env = {k: v for k, v in stack.service_env("gateway").items()
           if k.startswith(RECORDED_ENV) and not k.endswith(WIRING_ENV)}
    return {"sizes": asdict(sizes), "stack_env": {**env, **STACK_ENV}}


def _measure(sizes: Sizes, folder: Path, progress: Progress, dog: Watchdog) -> dict[str, Any]:
    """Every scenario on one stack, then the traced breakdown on a stack of its own."""
    progress.say(f"compare ({sizes.name}): starting Redis and the four services; logs in {folder / 'logs'}/")
    with contextlib.ExitStack() as stopping:
        with dog.phase("stack start", budgets.bound_s("stack start", sizes)):
            stack = stopping.enter_context(Stack(free_ports=True, log_dir=folder / "logs", env=dict(STACK_ENV)))
        meta = {**_settings(sizes, stack), "machine": report.machine(stack)}
        try:
            results = asyncio.run(_run(stack, sizes, progress, dog))
        except probes.Stalled as exc:
            raise SystemExit(f"compare: stopped, events mode is not making progress: {exc}\n"
                             f"service logs: {folder / 'logs'}/") from None
    orders = breakdown.ORDERS[sizes.name]
    progress.say(f"where the time goes: a traced stack of its own, {orders} orders per mode, one at a time")
    with dog.phase("breakdown", budgets.bound_s("breakdown", sizes)):
        results["breakdown"] = breakdown.measure(orders, folder / "logs" / "traced")
    return {**results, "meta": meta}


def run(sizes: Sizes, out_root: Path, latest: Path | None) -> Path:
    """The comparison end to end, every phase bounded; returns the folder of this run's results,
    whose report is also copied to `latest` when given (the tracked report: `make compare SAVE=1`)."""
    started, progress, clock = datetime.now(UTC), Progress(), time.monotonic()
    folder = out_root / f"compare-{started.strftime('%Y%m%d-%H%M%S')}"
    dog = Watchdog(progress.say)
    try:
        with dog.watching():
            results = _measure(sizes, folder, progress, dog)
            with dog.phase("report", budgets.bound_s("report", sizes)):
                report.write_records(folder, results.pop("journal"))
                results["meta"] = {"started": started.isoformat(timespec="seconds"), **results["meta"],
                                   "duration_s": round(time.monotonic() - clock, 1),
                                   "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
                results["invariants"] = report.invariants(results)
                report.write(results, folder, charts.draw(results, folder))
    except Expired as exc:
        raise SystemExit(f"{exc}\nservice logs: {folder / 'logs'}/") from None
    if latest is not None:
        report.publish(folder, latest)
    progress.done()
    print(report.table(results))
    print(f"\nresults: {folder}/" + (f" (copied to {latest}/)" if latest is not None else
                                      " (untracked; `make compare SAVE=1` updates results/latest/)"))
    return folder


def main(quick: bool, results: str, latest: str | None) -> None:
    """`results`: the folder of compare-<time>/ runs; `latest`: where the report is copied (None: nowhere)."""
    folder = run(QUICK if quick else FULL, Path(results), Path(latest) if latest else None)
    if not all(report.load(folder)["invariants"].values()):
        raise SystemExit("compare: an invariant failed (see the Accounting section above)")
