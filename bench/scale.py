"""Speed at scale, in one run: events-mode orders through the gateway(s) on one Redis and on a
3-master + 3-replica Redis Cluster, with 1 and with 2 instances of every service, and on the
cluster with REDIS_WAIT_REPLICAS=1 (each commit waits for a replica).

    .venv/bin/python -m bench.scale [--quick]      (make bench-scale)

For each setup: a warm-up, then IN_FLIGHT callers for a fixed time; the consumers are let finish
(the CPU settles) before the CPU of every process of the setup (services and Redis servers) is
read. CPU per order is that sum over the orders placed; the aim is at most 1.2x the single-Redis,
one-instance figure. On 2 cores throughput cannot grow with instances. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

from bench.common.cpu import cpu_all
from bench.common.load import IN_FLIGHT, closed_loop, gateway_call
from shopctl.instances import ScaledStack
from shoplib.calls import balancing

AIM_RATIO = 1.2
# (label, REDIS_CLUSTER, instances of every service, REDIS_WAIT_REPLICAS)
SETUPS = (("single Redis", False, 1, 0), ("cluster", True, 1, 0), ("single Redis", False, 2, 0),
          ("cluster", True, 2, 0), ("cluster+WAIT 1", True, 1, 1))
SETTLE_POLL_S = 0.5
SETTLE_CPU_S = 0.05  # the setup's processes used less CPU than this over one poll: the backlog is done
SETTLE_MAX_S = 60.0


@dataclass(frozen=True)
class Sizes:
    warm_up: int
    measure_s: float


FULL, QUICK = Sizes(warm_up=300, measure_s=15.0), Sizes(warm_up=60, measure_s=4.0)


@dataclass
class Result:
    setup: str
    instances: int
    orders: int
    per_s: float
    cpu_ms: dict[str, float]  # per order: "services", "redis"

    @property
    def total_ms(self) -> float:
        return sum(self.cpu_ms.values())


def pids_of(stack: ScaledStack) -> dict[str, int]:
    pids = {name: process.pid for name, process in stack.processes.items()}
    servers = stack.cluster.nodes if stack.cluster else [stack.redis] if stack.redis else []
    pids.update({f"redis:{node.port}": node.process.pid for node in servers if node and node.process})
    return pids


async def settle(pids: dict[str, int]) -> None:
    """Until the processes are idle: the consumers have finished what the callers left them."""
    deadline, last = time.monotonic() + SETTLE_MAX_S, sum(cpu_all(pids).values())
    while time.monotonic() < deadline:
        await asyncio.sleep(SETTLE_POLL_S)
        now = sum(cpu_all(pids).values())
        if now - last < SETTLE_CPU_S:
            return
        last = now


async def drive(stack: ScaledStack, sizes: Sizes) -> tuple[int, float, dict[str, float]]:
    """(orders, orders/s, CPU s by process) of the measured phase, the backlog included."""
    target, pids = balancing.target(stack.addresses("gateway")), pids_of(stack)
    async with grpc.aio.insecure_channel(target, options=balancing.ROUND_ROBIN_OPTIONS) as channel:
        call = gateway_call(gw_grpc.GatewayServiceStub(channel), types_pb2.FLOW_MODE_EVENTS)
        await closed_loop(call, IN_FLIGHT, sizes.warm_up, sizes.measure_s)
        await settle(pids)
        before, started = cpu_all(pids), time.perf_counter()
        run = await closed_loop(call, IN_FLIGHT, 10**9, sizes.measure_s)
        await settle(pids)
        elapsed = time.perf_counter() - started
        after = cpu_all(pids)
    return len(run.latencies_ms), len(run.latencies_ms) / elapsed, {k: after[k] - before[k] for k in before}


def measure(setup: str, clustered: bool, instances: int, wait: int, sizes: Sizes) -> Result:
    env = {"REDIS_CLUSTER": "1" if clustered else "0", "REDIS_WAIT_REPLICAS": str(wait)}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as logs:
        stack = ScaledStack(free_ports=True, log_dir=Path(logs), env=env, instances=instances)
        stack.redis_url = ""  # a private Redis or cluster per setup, whatever REDIS_URL says
        with stack:
            print(f"{setup}, {instances} instance(s) up; measuring...", flush=True)
            orders, per_s, cpu = asyncio.run(drive(stack, sizes))
    redis_s = sum(v for k, v in cpu.items() if k.startswith("redis:"))
    services_s = sum(cpu.values()) - redis_s
    return Result(setup, instances, orders, per_s,
                  {"services": services_s * 1000 / orders, "redis": redis_s * 1000 / orders})


def report(results: list[Result]) -> None:
    base = results[0].total_ms
    print(f"\n{'setup':<14} {'inst':>4} {'orders':>7} {'orders/s':>9} {'svc ms/order':>13} {'redis ms/order':>15} "
          f"{'CPU ms/order':>13} {'vs base':>8}   aim <= {AIM_RATIO}x")
    for r in results:
        ratio = r.total_ms / base
        verdict = "met" if ratio <= AIM_RATIO else "not met"
        print(f"{r.setup:<14} {r.instances:>4} {r.orders:>7} {r.per_s:>9.1f} {r.cpu_ms['services']:>13.2f} "
              f"{r.cpu_ms['redis']:>15.2f} {r.total_ms:>13.2f} {ratio:>7.2f}x   {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description="events-mode speed: single Redis vs cluster, 1 vs 2 instances")
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute), for a smoke test")
    sizes = QUICK if parser.parse_args().quick else FULL
    os.environ.pop("REDIS_URL", None)
    report([measure(*setup, sizes) for setup in SETUPS])


if __name__ == "__main__":
    main()
