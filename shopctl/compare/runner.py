"""Runs the whole comparison on one stack: warm up, then each scenario, then the report."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import notification_service_pb2_grpc as nt_grpc

from shopctl.compare import breakdown, charts, outage, probes, report, scenarios
from shopctl.compare.bench import FULL, QUICK, Bench, Sizes
from shopctl.compare.progress import Progress
from shopctl.stack import Stack

# The stack's settings for the run, recorded in the report. Services log at WARNING: per-order
# INFO lines would cost CPU in proportion to each mode's number of hops, not to its design.
STACK_ENV = {"LOG_LEVEL": "WARNING"}


# Settings that change what is measured, recorded with the results when set in the environment.
RECORDED_ENV = ("STREAM_", "PAYMENT_", "DEFAULT_FLOW_MODE", "LOG_", "FAULTS")
WIRING_ENV = ("_ADDR", "_PORT")  # addresses and ports: how the stack is wired, not what it measures


async def _scenarios(bench: Bench) -> dict[str, Any]:
    results: dict[str, Any] = {"mode_check": await scenarios.mode_check(bench)}
    await scenarios.warm_up(bench)
    results["latency"] = await scenarios.latency(bench)
    results["outcome"] = await scenarios.outcome(bench, "outcome")
    results["payment_slow"] = await scenarios.payment_slow(bench)
    results["payment_down"] = await outage.payment_down(bench)
    results["dead_letters"] = await probes.dead_letters(bench.redis)
    return results


async def _run(stack: Stack, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(stack.address("gateway")) as gateway, \
            grpc.aio.insecure_channel(stack.address("notification")) as notifier:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            bench = Bench(stack, sizes, gw_grpc.GatewayServiceStub(gateway),
                          nt_grpc.NotificationServiceStub(notifier), client, progress)
            return {**await _scenarios(bench), "journal": bench.journal}
        finally:
            await client.aclose()


def _settings(sizes: Sizes, stack: Stack) -> dict[str, Any]:
    env = {k: v for k, v in stack.service_env("gateway").items()
           if k.startswith(RECORDED_ENV) and not k.endswith(WIRING_ENV)}
    return {"sizes": asdict(sizes), "stack_env": {**env, **STACK_ENV}}


def run(sizes: Sizes, out_root: Path) -> Path:
    """The comparison end to end; returns the folder of this run's results."""
    started, progress, clock = datetime.now(UTC), Progress(), time.monotonic()
    folder = out_root / f"compare-{started.strftime('%Y%m%d-%H%M%S')}"
    progress.say(f"compare ({sizes.name}): starting Redis and the four services; logs in {folder / 'logs'}/")
    with Stack(free_ports=True, log_dir=folder / "logs", env=dict(STACK_ENV)) as stack:
        meta = {"started": started.isoformat(timespec="seconds"), **_settings(sizes, stack),
                "machine": report.machine(stack)}
        try:
            results = asyncio.run(_run(stack, sizes, progress))
        except probes.Stalled as exc:
            raise SystemExit(f"compare: stopped, events mode is not making progress: {exc}\n"
                             f"service logs: {folder / 'logs'}/") from None
    orders = breakdown.ORDERS[sizes.name]
    progress.say(f"where the time goes: a traced stack of its own, {orders} orders per mode, one at a time")
    results["breakdown"] = breakdown.measure(orders, folder / "logs" / "traced")
    report.write_records(folder, results.pop("journal"))
    results["meta"] = {**meta, "duration_s": round(time.monotonic() - clock, 1),
                       "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    results["invariants"] = report.invariants(results)
    report.write(results, folder, charts.draw(results, folder))
    report.publish(folder, out_root / "latest")
    progress.done()
    print(report.table(results))
    print(f"\nresults: {folder}/ (copied to {out_root / 'latest'}/)")
    return folder


def main(quick: bool, results: str) -> None:
    folder = run(QUICK if quick else FULL, Path(results))
    if not all(report.load(folder)["invariants"].values()):
        raise SystemExit("compare: an invariant failed (see the Accounting section above)")
