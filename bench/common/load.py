"""The client side of both benches: PlaceOrder calls through the gateway in a closed loop, at 1
and at IN_FLIGHT requests in flight, and the latency percentiles of what came back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field

import grpc
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

from bench.common.cpu import cpu_all, per_call
from shopctl.load import paid_orders

IN_FLIGHT = 64
CALL_TIMEOUT_S = 10.0  # one order; far above any healthy latency, so a hang shows as an error


@dataclass(frozen=True)
class LatencySizes:
    warm_up: int  # serial calls before measuring (connections open, caches warm)
    serial: int  # measured calls at 1 in flight
    burst_warm_up: int  # calls at IN_FLIGHT before measuring
    burst_max: int  # measured calls at IN_FLIGHT, at most...
    burst_s: float  # ...and for at most this long


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    placed: dict[str, float] = field(default_factory=dict)  # order id -> client start, time.time()
    errors: int = 0
    skipped: int = 0  # open loop only: requests not sent because too many were outstanding
    started_wall: float = 0.0
    elapsed_s: float = 0.0
    cpu_ms_per_call: dict[str, float] = field(default_factory=dict)  # by process, over the run

    def p(self, q: float) -> float:
        return pct(self.latencies_ms, q)

    @property
    def per_s(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def compared(*columns: tuple[Run, Run]) -> Iterator[tuple[str, str, list[float]]]:
    """(percentile, in flight, ms of each column): the latency rows the benches print side by
    side; each column is a (1 in flight, IN_FLIGHT) pair of runs."""
    for name, index, q in (("p50", 0, 0.50), ("p99", 0, 0.99), ("p50", 1, 0.50), ("p99", 1, 0.99)):
        yield name, ("1 in flight", f"{IN_FLIGHT} in flight")[index], [column[index].p(q) for column in columns]


Call = Callable[[], Awaitable[gw.PlaceOrderResponse]]


def gateway_call(stub: gw_grpc.GatewayServiceAsyncStub, mode: types_pb2.FlowMode.ValueType) -> Call:
    """PlaceOrder of a new paid order in `mode` per call."""
    request = paid_orders(f"bench-{uuid.uuid4().hex[:8]}", mode)
    return lambda: stub.PlaceOrder(request(), timeout=CALL_TIMEOUT_S)


async def closed_loop(call: Call, in_flight: int, count: int, max_s: float) -> Run:
    """`count` calls (fewer if `max_s` runs out) by `in_flight` workers sharing one budget."""
    budget, run = iter(range(count)), Run(started_wall=time.time())
    started = time.perf_counter()
    deadline = started + max_s

    async def worker() -> None:
        for _ in budget:
            if time.perf_counter() > deadline:
                return
            wall, t0 = time.time(), time.perf_counter()
            try:
                reply = await call()
            except grpc.aio.AioRpcError:
                run.errors += 1
                continue
            run.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if reply.order.order_id:
                run.placed[reply.order.order_id] = wall

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    run.elapsed_s = time.perf_counter() - started
    return run


async def latency_runs(address: str, mode: types_pb2.FlowMode.ValueType, sizes: LatencySizes,
                       pids: Mapping[str, int]) -> tuple[Run, Run]:
    """(1 in flight, IN_FLIGHT) runs against the gateway at `address`, after warm-ups; the
    IN_FLIGHT run also records the CPU each process in `pids` spent per call."""
    async with grpc.aio.insecure_channel(address) as channel:
        return await latency_runs_on(gateway_call(gw_grpc.GatewayServiceStub(channel), mode), sizes, pids)


async def latency_runs_on(call: Call, sizes: LatencySizes, pids: Mapping[str, int]) -> tuple[Run, Run]:
    """latency_runs over an already built `call` (a secure channel's, for one)."""
    await closed_loop(call, 1, sizes.warm_up, CALL_TIMEOUT_S * sizes.warm_up)
    serial = await closed_loop(call, 1, sizes.serial, CALL_TIMEOUT_S * sizes.serial)
    await closed_loop(call, IN_FLIGHT, sizes.burst_warm_up, sizes.burst_s)
    cpu0 = cpu_all(pids)
    burst = await closed_loop(call, IN_FLIGHT, sizes.burst_max, sizes.burst_s)
    burst.cpu_ms_per_call = per_call(cpu0, cpu_all(pids), len(burst.latencies_ms))
    return serial, burst
