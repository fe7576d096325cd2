"""One measured run of a setup, real or twin: a warm-up, then IN_FLIGHT callers for a fixed time
through the gateway(s); the consumers are let finish (the CPU settles) before the CPU of every
process of the setup (services and Redis servers) is read, and the Redis commands the masters ran
(INFO commandstats, reset before the run) are counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import redis
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

from bench.common.cpu import cpu_all
from bench.common.load import IN_FLIGHT, closed_loop, gateway_call
from shopctl.local_redis.server import LocalRedis
from shoplib.calls import balancing

SETTLE_POLL_S = 0.5
SETTLE_CPU_S = 0.05  # the setup's processes used less CPU than this over one poll: the backlog is done
SETTLE_MAX_S = 60.0
NOT_COUNTED = ("info", "config|resetstat")  # the bench's own questions to Redis


@dataclass(frozen=True)
class Sizes:
    warm_up: int
    measure_s: float


FULL, QUICK = Sizes(warm_up=300, measure_s=15.0), Sizes(warm_up=60, measure_s=4.0)


@dataclass(frozen=True)
class Setup:
    """Where: one Redis or the cluster, `instances` of every service, REDIS_WAIT_REPLICAS."""

    name: str
    clustered: bool
    instances: int
    wait_replicas: int = 0


@dataclass
class Result:
    setup: Setup
    kind: str  # "real", or which twin
    orders: int
    per_s: float
    cpu_ms: dict[str, float]  # per order: "services", "redis"
    commands: dict[str, float] = field(default_factory=dict)  # Redis commands per order, all masters
    errors: int = 0  # calls that failed (a NOREPLICAS, a timeout): not orders

    @property
    def total_ms(self) -> float:
        return sum(self.cpu_ms.values())


@dataclass(frozen=True)
class Target:
    """What a run drives and reads: the gateways, every process of the setup, its Redis servers."""

    gateways: str  # comma-separated addresses
    pids: dict[str, int]
    servers: Sequence[LocalRedis]


def server_pids(servers: Sequence[LocalRedis]) -> dict[str, int]:
    return {f"redis:{node.port}": node.process.pid for node in servers if node.process}


async def settle(pids: dict[str, int]) -> None:
    """Until the processes are idle: the consumers have finished what the callers left them."""
    deadline, last = time.monotonic() + SETTLE_MAX_S, sum(cpu_all(pids).values())
    while time.monotonic() < deadline:
        await asyncio.sleep(SETTLE_POLL_S)
        now = sum(cpu_all(pids).values())
        if now - last < SETTLE_CPU_S:
            return
        last = now


def _masters(servers: Sequence[LocalRedis]) -> list[redis.Redis]:
    clients = [redis.Redis(port=node.port) for node in servers]
    return [client for client in clients if client.info("replication")["role"] == "master"]


def _commands(servers: Sequence[LocalRedis]) -> dict[str, int]:
    """Calls of each command since the reset, summed over the masters (replicas only replay)."""
    calls: dict[str, int] = {}
    for client in _masters(servers):
        for name, stats in client.info("commandstats").items():
            command = name.removeprefix("cmdstat_")
            if command not in NOT_COUNTED:
                calls[command] = calls.get(command, 0) + int(stats["calls"])
        client.close()
    return calls


async def drive(target: Target, sizes: Sizes) -> tuple[int, float, dict[str, float], dict[str, int], int]:
    """(orders, orders/s, CPU s by process, commands, failed calls) of the measured phase, the
    backlog included."""
    async with grpc.aio.insecure_channel(balancing.target(target.gateways),
                                         options=balancing.ROUND_ROBIN_OPTIONS) as channel:
        call = gateway_call(gw_grpc.GatewayServiceStub(channel), types_pb2.FLOW_MODE_EVENTS)
        await closed_loop(call, IN_FLIGHT, sizes.warm_up, sizes.measure_s)
        await settle(target.pids)
        for client in _masters(target.servers):
            client.config_resetstat()
            client.close()
        before, started = cpu_all(target.pids), time.perf_counter()
        run = await closed_loop(call, IN_FLIGHT, 10**9, sizes.measure_s)
        await settle(target.pids)
        elapsed = time.perf_counter() - started
        after = cpu_all(target.pids)
    cpu = {k: after[k] - before[k] for k in before}
    return len(run.latencies_ms), len(run.latencies_ms) / elapsed, cpu, _commands(target.servers), run.errors


def measure(setup: Setup, kind: str, target: Target, sizes: Sizes) -> Result:
    print(f"{setup.name}, {setup.instances} instance(s), {kind} up; measuring...", flush=True)
    orders, per_s, cpu, commands, errors = asyncio.run(drive(target, sizes))
    redis_s = sum(v for k, v in cpu.items() if k.startswith("redis:"))
    services_s = sum(cpu.values()) - redis_s
    return Result(setup, kind, orders, per_s,
                  {"services": services_s * 1000 / orders, "redis": redis_s * 1000 / orders},
                  {name: n / orders for name, n in commands.items()}, errors)
