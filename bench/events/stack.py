"""The real stack in events mode: PlaceOrder latency at 1 and IN_FLIGHT in flight, then end to
end (PlaceOrder to receipt) under a light and a steady open loop and a saturating closed loop."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import grpc
import redis
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

from bench.common.cpu import Others, cpu_all, per_call
from bench.common.load import IN_FLIGHT, Run, closed_loop, gateway_call, latency_runs
from bench.events.groups import wait_idle
from bench.events.open_loop import open_loop_run
from bench.events.receipts import Receipts
from bench.events.sizes import LIGHT_RATE, STEADY_SKIP_S, Sizes
from shopctl.stack import Stack

EVENTS = types_pb2.FLOW_MODE_EVENTS


@dataclass
class OpenLoop:
    run: Run
    to_receipt_ms: list[float]
    missing: int  # receipts that never came


@dataclass
class Saturated:
    run: Run  # the IN_FLIGHT closed loop
    completed_per_s: float  # receipts per second in the steady part of the run
    missing: int
    drained_after_s: float  # how long after the load the last receipt came


@dataclass
class EndToEnd:
    light: OpenLoop  # at LIGHT_RATE: the pipeline's own latency, without queueing
    steady: OpenLoop  # at the fixed rate
    cpu_ms_per_order: dict[str, float]  # per process, over the steady run
    saturated: Saturated


@dataclass
class StackResult:
    serial: Run
    burst: Run
    e2e: EndToEnd


@dataclass
class _Target:
    """The stack under measurement, and what the phases share."""

    gateway: str
    client: redis.Redis
    pids: dict[str, int]
    sizes: Sizes
    receipts: Receipts

    def settle(self, run: Run) -> int:
        """Waits for the receipts of `run`, then for every group to be idle; receipts missing."""
        missing = self.receipts.wait_for(list(run.placed), self.sizes.settle_s)
        wait_idle(self.client, self.sizes.settle_s)
        return missing


def measure_stack(stack: Stack, sizes: Sizes) -> StackResult:
    assert stack.redis is not None and stack.redis.process is not None
    client = redis.Redis(port=stack.redis.port)
    pids = {name: p.pid for name, p in stack.processes.items()}
    pids |= {"redis": stack.redis.process.pid, "bench client": os.getpid()}
    try:
        with Others("events stack", list(pids.values())):
            return _stack_runs(_Target(stack.address("gateway"), client, pids, sizes, Receipts(client)))
    finally:
        client.close()


def _stack_runs(target: _Target) -> StackResult:
    serial, burst = asyncio.run(latency_runs(target.gateway, EVENTS, target.sizes, target.pids))
    print(f"  PlaceOrder: {len(serial.latencies_ms)} at 1 in flight, {len(burst.latencies_ms)} at "
          f"{IN_FLIGHT} in flight ({burst.per_s:.0f}/s); waiting for the consumers to catch up...", flush=True)
    wait_idle(target.client, target.sizes.settle_s)
    target.receipts.wait_for(list(burst.placed), target.sizes.settle_s)
    light = _open_loop(target, "open loop, light", LIGHT_RATE)
    cpu0 = cpu_all(target.pids)
    steady = _open_loop(target, "open loop", target.sizes.rate)
    cpu_per_order = per_call(cpu0, cpu_all(target.pids), len(steady.run.placed) - steady.missing)
    return StackResult(serial, burst, EndToEnd(light, steady, cpu_per_order, _saturated(target)))


def _open_loop(target: _Target, label: str, rate: float) -> OpenLoop:
    print(f"  {label}: {rate:.0f} orders/s for {target.sizes.rate_s:.0f} s...", flush=True)
    run = asyncio.run(open_loop_run(target.gateway, rate, target.sizes.rate_s))
    missing = target.settle(run)
    at = target.receipts.at
    return OpenLoop(run, [(at[o] - t) * 1000 for o, t in run.placed.items() if o in at], missing)


def _saturated(target: _Target) -> Saturated:
    sizes, at = target.sizes, target.receipts.at
    print(f"  saturating: {IN_FLIGHT} in flight for {sizes.burst_s:.0f} s...", flush=True)
    run = asyncio.run(_saturate(target.gateway, sizes))
    missing = target.settle(run)
    start, end = run.started_wall + STEADY_SKIP_S, run.started_wall + run.elapsed_s
    times = [at[o] for o in run.placed if o in at]
    in_window = sum(1 for t in times if start <= t <= end)
    completed_per_s = in_window / (end - start) if end > start else float("nan")
    return Saturated(run, completed_per_s, missing, (max(times) - end) if times else float("nan"))


async def _saturate(address: str, sizes: Sizes) -> Run:
    async with grpc.aio.insecure_channel(address) as channel:
        call = gateway_call(gw_grpc.GatewayServiceStub(channel), EVENTS)
        return await closed_loop(call, IN_FLIGHT, sizes.burst_max, sizes.burst_s)
