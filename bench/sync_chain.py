"""Speed of the sync chain: the real stack against a bare grpc.aio chain of the same four hops.

    .venv/bin/python -m bench.sync_chain [--quick]

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
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import notification_service_pb2 as nt
from shop.v1 import notification_service_pb2_grpc as nt_grpc
from shop.v1 import order_service_pb2 as od
from shop.v1 import order_service_pb2_grpc as od_grpc
from shop.v1 import payment_service_pb2 as pm
from shop.v1 import payment_service_pb2_grpc as pm_grpc
from shop.v1 import types_pb2

from bench.common import before_after
from bench.common.bare import BareGateway, BareOrderReads, Closer, Context, serve, unimplemented
from bench.common.before_after import Figure
from bench.common.load import CALL_TIMEOUT_S, IN_FLIGHT, LatencySizes, Run, compared, latency_runs
from bench.common.processes import BareServers
from shopctl.stack import Stack

# The aims: sync latency at most 1.3x the bare chain, throughput at least 80% of it.
AIM_LATENCY_RATIO = 1.3
AIM_THROUGHPUT_SHARE = 0.8

FULL = LatencySizes(warm_up=50, serial=300, burst_warm_up=256, burst_max=3000, burst_s=5.0)
QUICK = LatencySizes(warm_up=10, serial=50, burst_warm_up=64, burst_max=500, burst_s=2.0)


# --- the bare chain: one process per role, empty handlers over the real stubs -----------------

class BareNotification(nt_grpc.NotificationServiceServicer):
    async def SendNotification(self, request: nt.SendNotificationRequest, context: Context
                               ) -> nt.SendNotificationResponse:
        return nt.SendNotificationResponse()

    async def ListNotifications(self, request: nt.ListNotificationsRequest, context: Context
                                ) -> nt.ListNotificationsResponse:
        await unimplemented(context)


class BarePayment(pm_grpc.PaymentServiceServicer):
    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self._notify: nt_grpc.NotificationServiceAsyncStub = nt_grpc.NotificationServiceStub(channels["notification"])

    async def Charge(self, request: pm.ChargeRequest, context: Context) -> pm.ChargeResponse:
        await self._notify.SendNotification(nt.SendNotificationRequest(order_id=request.order_id),
                                            timeout=CALL_TIMEOUT_S)
        return pm.ChargeResponse()

    async def GetPayment(self, request: pm.GetPaymentRequest, context: Context) -> pm.GetPaymentResponse:
        await unimplemented(context)


class BareOrder(BareOrderReads):
    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self._notify: nt_grpc.NotificationServiceAsyncStub = nt_grpc.NotificationServiceStub(channels["notification"])
        self._charge: pm_grpc.PaymentServiceAsyncStub = pm_grpc.PaymentServiceStub(channels["payment"])

    async def CreateOrder(self, request: od.CreateOrderRequest, context: Context) -> od.CreateOrderResponse:
        await self._notify.SendNotification(nt.SendNotificationRequest(order_id="o"), timeout=CALL_TIMEOUT_S)
        await self._charge.Charge(pm.ChargeRequest(order_id="o"), timeout=CALL_TIMEOUT_S)
        return od.CreateOrderResponse()


Register = Callable[[grpc.aio.Server, dict[str, grpc.aio.Channel]], None]
BARE: dict[str, tuple[tuple[str, ...], Register]] = {  # role: (downstream roles, register)
    "notification": ((), lambda s, ch: nt_grpc.add_NotificationServiceServicer_to_server(BareNotification(), s)),
    "payment": (("notification",), lambda s, ch: pm_grpc.add_PaymentServiceServicer_to_server(BarePayment(ch), s)),
    "order": (("notification", "payment"), lambda s, ch: od_grpc.add_OrderServiceServicer_to_server(BareOrder(ch), s)),
    "gateway": (("order",), lambda s, ch: gw_grpc.add_GatewayServiceServicer_to_server(BareGateway(ch["order"]), s)),
}


async def serve_bare(role: str, port: int, downstream: dict[str, str]) -> None:
    def register(server: grpc.aio.Server) -> Sequence[Closer]:
        channels = {name: grpc.aio.insecure_channel(address) for name, address in downstream.items()}
        BARE[role][1](server, channels)
        return [channel.close for channel in channels.values()]

    await serve(register, port)


class BareChain(BareServers):
    """The four bare servers as child processes; `with BareChain() as chain:` stops them all."""

    def __init__(self) -> None:
        super().__init__("bench.sync_chain", BARE)

    def start(self) -> None:
        for role, (downstream, _) in BARE.items():
            self.spawn(role, *(f"{name}={self.address(name)}" for name in downstream))


# --- the report ---------------------------------------------------------------------------------

def _row(metric: str, bare: float, real: float, ratio: str, aim: str) -> str:
    return f"{metric:<32} {bare:>10.2f} {real:>10.2f} {ratio:>8}   {aim}"


ROWS = [
    Figure("p50_1_ratio", "PlaceOrder p50, 1 in flight, x bare", "x", f"<= {AIM_LATENCY_RATIO}x",
           limit=AIM_LATENCY_RATIO),
    Figure("p50_1_ms", "PlaceOrder p50, 1 in flight", " ms", ""),
    Figure("orders_share", f"orders/s at {IN_FLIGHT} in flight, of bare", "%", f">= {AIM_THROUGHPUT_SHARE:.0%}",
           lower_is_better=False, limit=AIM_THROUGHPUT_SHARE),
    Figure("orders_per_s", f"orders/s at {IN_FLIGHT} in flight", "/s", "", lower_is_better=False),
    Figure("cpu_ms", "CPU per order, all but the client", " ms", ""),
    Figure("bare_cpu_ms", "CPU per order, bare chain", " ms", ""),
    Figure("own_cpu_ms", "own CPU per order (ours - bare)", " ms", "half of before", of_before=0.5),
]


def figures(bare: tuple[Run, Run], real: tuple[Run, Run]) -> dict[str, float]:
    """The headline figures of a run, as results/bench/sync.json keeps them."""
    cpu, bare_cpu = (sum(runs[1].cpu_ms_per_call.values()) for runs in (real, bare))
    return {"p50_1_ratio": real[0].p(0.5) / bare[0].p(0.5), "p50_1_ms": real[0].p(0.5),
            "orders_share": real[1].per_s / bare[1].per_s, "orders_per_s": real[1].per_s,
            "cpu_ms": cpu, "bare_cpu_ms": bare_cpu, "own_cpu_ms": cpu - bare_cpu}


def report(bare: tuple[Run, Run], real: tuple[Run, Run]) -> None:
    print(f"\n{'metric':<32} {'bare chain':>10} {'real sync':>10} {'ratio':>8}   aim")
    for name, in_flight, b, r in compared(bare, real):
        met = "met" if r / b <= AIM_LATENCY_RATIO else "not met"
        print(_row(f"{name} ms, {in_flight}", b, r, f"{r / b:.2f}x", f"<= {AIM_LATENCY_RATIO}x ({met})"))
    b, r = bare[1].per_s, real[1].per_s
    met = "met" if r / b >= AIM_THROUGHPUT_SHARE else "not met"
    print(_row(f"orders/s, {IN_FLIGHT} in flight", b, r, f"{r / b:.0%}", f">= {AIM_THROUGHPUT_SHARE:.0%} ({met})"))
    b, r = (sum(runs[1].cpu_ms_per_call.values()) for runs in (bare, real))
    print(_row(f"CPU ms/order, {IN_FLIGHT} in flight", b, r, f"{r / b:.2f}x", "(all processes but the client)"))
    for name, (serial, burst) in (("bare chain", bare), ("real sync", real)):
        cpu = ", ".join(f"{process} {ms:.3f}" for process, ms in burst.cpu_ms_per_call.items())
        print(f"{name}: CPU ms per order at {IN_FLIGHT} in flight: {cpu}")
        print(f"{name}: {len(serial.latencies_ms)} + {len(burst.latencies_ms)} calls measured "
              f"({burst.elapsed_s:.1f} s at {IN_FLIGHT} in flight), {serial.errors + burst.errors} errors")


def measure(sizes: LatencySizes) -> tuple[tuple[Run, Run], tuple[Run, Run]]:
    """(bare chain, real sync stack): each (1 in flight, IN_FLIGHT)."""
    with BareChain() as chain:
        print("bare chain up; measuring...", flush=True)
        pids = {role: process.pid for role, process in chain.processes.items()}
        bare = asyncio.run(latency_runs(chain.address("gateway"), types_pb2.FLOW_MODE_SYNC, sizes, pids))
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as logs, Stack(free_ports=True, log_dir=Path(logs)) as stack:
        print("real stack up (sync mode, private Redis); measuring...", flush=True)
        pids = {name: process.pid for name, process in stack.processes.items()}
        if stack.redis is not None and stack.redis.process is not None:
            pids["redis"] = stack.redis.process.pid
        real = asyncio.run(latency_runs(stack.address("gateway"), types_pb2.FLOW_MODE_SYNC, sizes, pids))
    return bare, real


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
          f"{sizes.serial} at 1 in flight, up to {sizes.burst_max} / {sizes.burst_s:.0f} s at {IN_FLIGHT}")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start (other work skews the figures)")
    bare, real = measure(sizes)
    report(bare, real)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    found = figures(bare, real)
    if not args.quick:  # a smoke run's figures are not kept
        before_after.save("sync", found)
    print("\n" + before_after.table("sync", found, ROWS))


if __name__ == "__main__":
    main(sys.argv[1:])
