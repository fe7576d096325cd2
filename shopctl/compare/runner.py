"""Runs the whole comparison on one stack: warm up, then each scenario, then the report."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import notification_service_pb2_grpc as nt_grpc

from shopctl.compare import charts, outage, probes, report, scenarios
from shopctl.compare.progress import Progress
from shopctl.load import Run
from shopctl.stack import Stack


@dataclass(frozen=True)
class Sizes:
    name: str
    warm_up_s: float  # per mode, before anything is measured
    levels: tuple[int, ...]  # requests in flight of the latency scenario
    rounds: int  # per level and mode, alternating which mode goes first
    round_s: float
    rate: float  # orders/s of the open loop (time to outcome, payment slow, payment down)
    outcome_s: float  # per round and mode
    delay_ms: int  # PAYMENT_DELAY_MS of the payment-slow scenario
    down_run_s: float  # the payment-down run, per mode...
    down_at_s: float  # ...payment stopped this far in...
    down_for_s: float  # ...and started again this much later
    drain_timeout_s: float  # the most any backlog may take to clear before it counts as lost


# Each mode gets the same load; the full size fits in about three minutes on 2 cores.
FULL = Sizes("full", warm_up_s=3, levels=(1, 16, 64), rounds=2, round_s=4, rate=40, outcome_s=5, delay_ms=50,
             down_run_s=16, down_at_s=4, down_for_s=5, drain_timeout_s=30)
QUICK = Sizes("quick", warm_up_s=1, levels=(1, 16), rounds=1, round_s=1.5, rate=30, outcome_s=2, delay_ms=50,
              down_run_s=6, down_at_s=1.5, down_for_s=2, drain_timeout_s=15)
# The stack's settings for the run, recorded in the report. Services log at WARNING: per-order
# INFO lines would cost CPU in proportion to each mode's number of hops, not to its design.
STACK_ENV = {"LOG_LEVEL": "WARNING"}


@dataclass
class Bench:
    """What every scenario needs: the stack, clients, sizes and the progress line."""

    stack: Stack
    sizes: Sizes
    gateway: gw_grpc.GatewayServiceStub
    notifier: nt_grpc.NotificationServiceStub
    redis: aioredis.Redis
    progress: Progress
    journal: list[tuple[str, Run]] = field(default_factory=list)  # every measured run, for records.csv


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
