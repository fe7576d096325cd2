"""Speed of the sync chain: the real stack against a bare grpc.aio chain of the same four hops.

    .venv/bin/python bench/sync_chain.py [--quick]

The bare chain is four server processes with empty handlers (gateway -> order -> notification,
order -> payment -> notification), no Redis, no logging: what the transport alone costs. The real
stack runs in sync mode with a private Redis. Both are driven by the same grpc.aio client, at 1
and at 64 requests in flight. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import notification_service_pb2 as nt
from shop.v1 import notification_service_pb2_grpc as nt_grpc
from shop.v1 import order_service_pb2 as od
from shop.v1 import order_service_pb2_grpc as od_grpc
from shop.v1 import payment_service_pb2 as pm
from shop.v1 import payment_service_pb2_grpc as pm_grpc
from shop.v1 import types_pb2

from shopctl.load import paid_orders
from shopctl.stack import Stack
from shoplib.redis_server import free_port, python_command

# The aims: sync latency at most 1.3x the bare chain, throughput at least 80% of it.
AIM_LATENCY_RATIO = 1.3
AIM_THROUGHPUT_SHARE = 0.8
IN_FLIGHT = 64
CALL_TIMEOUT_S = 10.0  # one order; far above any healthy latency, so a hang shows as an error
READY_TIMEOUT_S = 20.0  # a bare server process imports grpc and binds within a few seconds
STOP_TIMEOUT_S = 5.0
MAX_LIFETIME_S = 900.0  # a bare server left behind by a crashed bench exits on its own


@dataclass(frozen=True)
class Sizes:
    warm_up: int  # serial calls before measuring (connections open, caches warm)
    serial: int  # measured calls at 1 in flight
    burst_warm_up: int  # calls at 64 in flight before measuring
    burst_max: int  # measured calls at 64 in flight, at most...
    burst_max_s: float  # ...and for at most this long


FULL = Sizes(warm_up=50, serial=300, burst_warm_up=256, burst_max=3000, burst_max_s=5.0)
QUICK = Sizes(warm_up=10, serial=50, burst_warm_up=64, burst_max=500, burst_max_s=2.0)


# --- the bare chain: one process per role, empty handlers over the real stubs -----------------

class BareNotification(nt_grpc.NotificationServiceServicer):
    async def SendNotification(self, request: nt.SendNotificationRequest, context: object
                               ) -> nt.SendNotificationResponse:
        return nt.SendNotificationResponse()


class BarePayment(pm_grpc.PaymentServiceServicer):
    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self._notify = nt_grpc.NotificationServiceStub(channels["notification"])

    async def Charge(self, request: pm.ChargeRequest, context: object) -> pm.ChargeResponse:
        await self._notify.SendNotification(nt.SendNotificationRequest(order_id=request.order_id),
                                            timeout=CALL_TIMEOUT_S)
        return pm.ChargeResponse()


class BareOrder(od_grpc.OrderServiceServicer):
    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self._notify = nt_grpc.NotificationServiceStub(channels["notification"])
        self._charge = pm_grpc.PaymentServiceStub(channels["payment"])

    async def CreateOrder(self, request: od.CreateOrderRequest, context: object) -> od.CreateOrderResponse:
        await self._notify.SendNotification(nt.SendNotificationRequest(order_id="o"), timeout=CALL_TIMEOUT_S)
        await self._charge.Charge(pm.ChargeRequest(order_id="o"), timeout=CALL_TIMEOUT_S)
        return od.CreateOrderResponse()


class BareGateway(gw_grpc.GatewayServiceServicer):
    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self._orders = od_grpc.OrderServiceStub(channels["order"])

    async def PlaceOrder(self, request: gw.PlaceOrderRequest, context: object) -> gw.PlaceOrderResponse:
        reply = await self._orders.CreateOrder(od.CreateOrderRequest(
            idempotency_key=request.idempotency_key, customer_id=request.customer_id, lines=request.lines,
            mode=request.mode), timeout=CALL_TIMEOUT_S)
        return gw.PlaceOrderResponse(order=reply.order)


BARE = {  # role: (downstream roles, register)
    "notification": ((), lambda s, ch: nt_grpc.add_NotificationServiceServicer_to_server(BareNotification(), s)),
    "payment": (("notification",), lambda s, ch: pm_grpc.add_PaymentServiceServicer_to_server(BarePayment(ch), s)),
    "order": (("notification", "payment"), lambda s, ch: od_grpc.add_OrderServiceServicer_to_server(BareOrder(ch), s)),
    "gateway": (("order",), lambda s, ch: gw_grpc.add_GatewayServiceServicer_to_server(BareGateway(ch), s)),
}


async def serve_bare(role: str, port: int, downstream: dict[str, str]) -> None:
    """Body of a `--bare-server` process: serve until SIGTERM (or MAX_LIFETIME_S)."""
    channels = {name: grpc.aio.insecure_channel(address) for name, address in downstream.items()}
    server = grpc.aio.server()
    BARE[role][1](server, channels)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), MAX_LIFETIME_S)
    except TimeoutError:
        pass
    await server.stop(0.5)


class BareChain:
    """The four bare servers as child processes; `with BareChain() as chain:` stops them all."""

    def __init__(self) -> None:
        self.ports = {role: free_port() for role in BARE}
        self.processes: list[subprocess.Popen[bytes]] = []

    def address(self, role: str) -> str:
        return f"127.0.0.1:{self.ports[role]}"

    def __enter__(self) -> BareChain:
        try:
            for role, (downstream, _) in BARE.items():
                links = [f"{name}={self.address(name)}" for name in downstream]
                self.processes.append(subprocess.Popen(
                    python_command(__file__, "--bare-server", role, str(self.ports[role]), *links)))
            asyncio.run(self._wait_ready())
        except BaseException:
            self.__exit__()
            raise
        return self

    async def _wait_ready(self) -> None:
        for role in BARE:
            async with grpc.aio.insecure_channel(self.address(role)) as channel:
                await asyncio.wait_for(channel.channel_ready(), READY_TIMEOUT_S)

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the load: one grpc.aio client, 1 then 64 in flight ---------------------------------------

@dataclass
class Run:
    latencies_ms: list[float]
    errors: int
    elapsed_s: float

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    @property
    def per_s(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else float("nan")


async def load(call: Callable[[], Awaitable[object]], in_flight: int, count: int, max_s: float) -> Run:
    """`count` calls (fewer if `max_s` runs out) by `in_flight` workers sharing one budget."""
    budget, run = iter(range(count)), Run([], 0, 0.0)
    started = time.perf_counter()
    deadline = started + max_s

    async def worker() -> None:
        for _ in budget:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            try:
                await call()
            except grpc.aio.AioRpcError:
                run.errors += 1
                continue
            run.latencies_ms.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    run.elapsed_s = time.perf_counter() - started
    return run



async def measure(address: str, sizes: Sizes) -> tuple[Run, Run]:
    """(1 in flight, 64 in flight) runs against the gateway at `address`, after warm-ups."""
    request = paid_orders(f"bench-{uuid.uuid4().hex[:8]}", types_pb2.FLOW_MODE_SYNC)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = gw_grpc.GatewayServiceStub(channel)

        def call() -> Awaitable[object]:
            return stub.PlaceOrder(request(), timeout=CALL_TIMEOUT_S)

        await load(call, 1, sizes.warm_up, CALL_TIMEOUT_S * sizes.warm_up)
        serial = await load(call, 1, sizes.serial, CALL_TIMEOUT_S * sizes.serial)
        await load(call, IN_FLIGHT, sizes.burst_warm_up, sizes.burst_max_s)
        burst = await load(call, IN_FLIGHT, sizes.burst_max, sizes.burst_max_s)
    return serial, burst


# --- the report ---------------------------------------------------------------------------------

def _row(metric: str, bare: float, real: float, ratio: str, aim: str) -> str:
    return f"{metric:<32} {bare:>10.2f} {real:>10.2f} {ratio:>8}   {aim}"


def report(bare: tuple[Run, Run], real: tuple[Run, Run]) -> None:
    print(f"\n{'metric':<32} {'bare chain':>10} {'real sync':>10} {'ratio':>8}   aim")
    for label, run_index, q in (("p50 ms, 1 in flight", 0, 0.50), ("p99 ms, 1 in flight", 0, 0.99),
                                ("p50 ms, 64 in flight", 1, 0.50), ("p99 ms, 64 in flight", 1, 0.99)):
        b, r = bare[run_index].pct(q), real[run_index].pct(q)
        met = "met" if r / b <= AIM_LATENCY_RATIO else "not met"
        print(_row(label, b, r, f"{r / b:.2f}x", f"<= {AIM_LATENCY_RATIO}x ({met})"))
    b, r = bare[1].per_s, real[1].per_s
    met = "met" if r / b >= AIM_THROUGHPUT_SHARE else "not met"
    print(_row("orders/s, 64 in flight", b, r, f"{r / b:.0%}", f">= {AIM_THROUGHPUT_SHARE:.0%} ({met})"))
    for name, (serial, burst) in (("bare chain", bare), ("real sync", real)):
        print(f"{name}: {len(serial.latencies_ms)} + {len(burst.latencies_ms)} calls measured "
              f"({burst.elapsed_s:.1f} s at {IN_FLIGHT} in flight), {serial.errors + burst.errors} errors")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (seconds), for a smoke test")
    parser.add_argument("--bare-server", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server:
        role, port, *links = args.bare_server
        asyncio.run(serve_bare(role, int(port), dict(link.split("=", 1) for link in links)))
        return
    # `kill PID` ends this run like Ctrl-C does: the `with` blocks stop every process we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = QUICK if args.quick else FULL
    print(f"sync chain bench ({'quick' if args.quick else 'full'}): warm-up {sizes.warm_up}, "
          f"{sizes.serial} at 1 in flight, up to {sizes.burst_max} / {sizes.burst_max_s:.0f} s at {IN_FLIGHT}")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start (other work skews the figures)")
    with BareChain() as chain:
        print("bare chain up; measuring...", flush=True)
        bare = asyncio.run(measure(chain.address("gateway"), sizes))
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as logs, Stack(free_ports=True, log_dir=Path(logs)) as stack:
        print("real stack up (sync mode, private Redis); measuring...", flush=True)
        real = asyncio.run(measure(stack.address("gateway"), sizes))
    report(bare, real)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main(sys.argv[1:])
