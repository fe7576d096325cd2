"""Speed of the sync chain: the real stack against two bare grpc.aio chains of the same four hops.

    .venv/bin/python -m bench.sync_chain [--quick]

The bare chain is four server processes with empty handlers (gateway -> order -> notification,
order -> payment -> notification), no Redis, no logging: what the transport alone costs. The
durable chain is the same four with a private Redis (AOF, fsync always, as the real stack's),
each hop making the real hop's commits, one round trip each, 5 per order (bench.common.durable
says which and how they were counted): what the transport and the durable work cost, with
nothing of ours. The real stack runs in sync mode with a private Redis. All three are driven by
the same grpc.aio client, one after the other, at 1 and at 64 requests in flight. Prints figures
against issue 24's aims (against durable) and the older ones (against bare); asserts nothing.
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

from bench.common import before_after, durable
from bench.common import twins as twins_table
from bench.common.bare import BareGateway, BareOrderReads, Closer, Context, serve, unimplemented
from bench.common.before_after import Figure
from bench.common.durable import LeanStore
from bench.common.load import CALL_TIMEOUT_S, IN_FLIGHT, LatencySizes, Run, compared, latency_runs
from bench.common.processes import BareServers
from bench.common.twins import Aim
from shopctl.stack import Stack

SYNC = types_pb2.FLOW_MODE_SYNC
RECEIVED, RECEIPT = types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT

# The aims: sync latency at most 1.3x the bare chain, throughput at least 80% of it.
AIM_LATENCY_RATIO = 1.3
AIM_THROUGHPUT_SHARE = 0.8
# Issue 24's aims, against the durable chain (the same fsynced commits, done the cheapest way).
DURABLE_LATENCY = Aim(1.15)  # PlaceOrder p50 at 1 in flight, real / durable
DURABLE_THROUGHPUT = Aim(0.85, share=True)  # orders/s at IN_FLIGHT in flight, real / durable
P50_SERIAL = "p50 ms, 1 in flight"

Twins = tuple[tuple[Run, Run], tuple[Run, Run]]  # (bare chain, durable chain), each (1, IN_FLIGHT in flight)
FULL = LatencySizes(warm_up=50, serial=300, burst_warm_up=256, burst_max=3000, burst_s=5.0)
QUICK = LatencySizes(warm_up=10, serial=50, burst_warm_up=64, burst_max=500, burst_s=2.0)


# --- the bare chains: one process per role, empty handlers over the real stubs -----------------
# Bare: nothing stored. Durable (a LeanStore): each hop makes the real hop's commits, one round
# trip each, as bench.common.durable counted them: 5 per order, in the order the real chain makes them.

class BareNotification(nt_grpc.NotificationServiceServicer):
    def __init__(self, store: LeanStore | None) -> None:
        self._store = store

    async def SendNotification(self, request: nt.SendNotificationRequest, context: Context
                               ) -> nt.SendNotificationResponse:
        if self._store:
            await self._store.commit(durable.notified(request.order_id, request.kind))
        return nt.SendNotificationResponse()

    async def ListNotifications(self, request: nt.ListNotificationsRequest, context: Context
                                ) -> nt.ListNotificationsResponse:
        await unimplemented(context)


class BarePayment(pm_grpc.PaymentServiceServicer):
    def __init__(self, channels: dict[str, grpc.aio.Channel], store: LeanStore | None) -> None:
        self._notify: nt_grpc.NotificationServiceAsyncStub = nt_grpc.NotificationServiceStub(channels["notification"])
        self._store = store

    async def Charge(self, request: pm.ChargeRequest, context: Context) -> pm.ChargeResponse:
        if self._store:
            await self._store.commit(durable.charged(request.order_id))
        await self._notify.SendNotification(nt.SendNotificationRequest(order_id=request.order_id, kind=RECEIPT),
                                            timeout=CALL_TIMEOUT_S)
        return pm.ChargeResponse()

    async def GetPayment(self, request: pm.GetPaymentRequest, context: Context) -> pm.GetPaymentResponse:
        await unimplemented(context)


class BareOrder(BareOrderReads):
    def __init__(self, channels: dict[str, grpc.aio.Channel], store: LeanStore | None) -> None:
        self._notify: nt_grpc.NotificationServiceAsyncStub = nt_grpc.NotificationServiceStub(channels["notification"])
        self._charge: pm_grpc.PaymentServiceAsyncStub = pm_grpc.PaymentServiceStub(channels["payment"])
        self._store = store

    async def CreateOrder(self, request: od.CreateOrderRequest, context: Context) -> od.CreateOrderResponse:
        order_id = durable.new_order_id(request.idempotency_key) if self._store else "o"
        if self._store:
            await self._store.commit(durable.placed(request.idempotency_key, order_id, SYNC))
        await self._notify.SendNotification(nt.SendNotificationRequest(order_id=order_id, kind=RECEIVED),
                                            timeout=CALL_TIMEOUT_S)
        await self._charge.Charge(pm.ChargeRequest(order_id=order_id), timeout=CALL_TIMEOUT_S)
        if self._store:
            await self._store.commit(durable.settled(order_id, SYNC))
        return od.CreateOrderResponse()


Channels = dict[str, grpc.aio.Channel]
Register = Callable[[grpc.aio.Server, Channels, LeanStore | None], None]
BARE: dict[str, tuple[tuple[str, ...], Register]] = {  # role: (downstream roles, register)
    "notification": ((), lambda s, ch, st: nt_grpc.add_NotificationServiceServicer_to_server(BareNotification(st), s)),
    "payment": (("notification",),
                lambda s, ch, st: pm_grpc.add_PaymentServiceServicer_to_server(BarePayment(ch, st), s)),
    "order": (("notification", "payment"),
              lambda s, ch, st: od_grpc.add_OrderServiceServicer_to_server(BareOrder(ch, st), s)),
    "gateway": (("order",),
                lambda s, ch, st: gw_grpc.add_GatewayServiceServicer_to_server(BareGateway(ch["order"]), s)),
}
REDIS_LINK = "redis"  # a link of that name is the durable twin's Redis URL, not a downstream role


async def serve_bare(role: str, port: int, links: dict[str, str]) -> None:
    async def register(server: grpc.aio.Server) -> Sequence[Closer]:
        url = links.pop(REDIS_LINK, None)
        store = await durable.connect(url) if url and role != "gateway" else None
        channels = {name: grpc.aio.insecure_channel(address) for name, address in links.items()}
        BARE[role][1](server, channels, store)
        return [*(channel.close for channel in channels.values()), *([store.aclose] if store else [])]

    await serve(register, port)


class BareChain(BareServers):
    """The four bare servers as child processes (`durable`: on a private Redis, storing what the
    real chain stores); `with BareChain() as chain:` stops them all."""

    def __init__(self, durable: bool = False) -> None:
        super().__init__("bench.sync_chain", BARE, redis=durable)

    def start(self) -> None:
        store = [f"{REDIS_LINK}={self.redis_url}"] if self.redis else []
        for role, (downstream, _) in BARE.items():
            self.spawn(role, *(f"{name}={self.address(name)}" for name in downstream), *store)


# --- the report ---------------------------------------------------------------------------------

ROWS = [
    Figure("p50_1_durable_ratio", "PlaceOrder p50, 1 in flight, x durable", "x", f"<= {DURABLE_LATENCY.bound}x",
           limit=DURABLE_LATENCY.bound),
    Figure("orders_durable_share", f"orders/s at {IN_FLIGHT} in flight, of durable", "%",
           f">= {DURABLE_THROUGHPUT.bound:.0%}", lower_is_better=False, limit=DURABLE_THROUGHPUT.bound),
    Figure("durable_cpu_ms", "CPU per order, durable chain", " ms", ""),
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


def figures(twins: Twins, real: tuple[Run, Run]) -> dict[str, float]:
    """The headline figures of a run, as results/bench/sync.json keeps them."""
    (bare, durable), cpu, bare_cpu = twins, _cpu(real), _cpu(twins[0])
    return {"p50_1_durable_ratio": real[0].p(0.5) / durable[0].p(0.5),
            "orders_durable_share": real[1].per_s / durable[1].per_s, "durable_cpu_ms": _cpu(durable),
            "p50_1_ratio": real[0].p(0.5) / bare[0].p(0.5), "p50_1_ms": real[0].p(0.5),
            "orders_share": real[1].per_s / bare[1].per_s, "orders_per_s": real[1].per_s,
            "cpu_ms": cpu, "bare_cpu_ms": bare_cpu, "own_cpu_ms": cpu - bare_cpu}


def _cpu(runs: tuple[Run, Run]) -> float:
    return sum(runs[1].cpu_ms_per_call.values())


def rows(twins: Twins, real: tuple[Run, Run]) -> list[twins_table.Row]:
    """The three columns: latency (every row against AIM_LATENCY_RATIO of bare; p50 at 1 in flight
    also against DURABLE_LATENCY of durable), orders/s, CPU per order."""
    found = []
    for name, in_flight, (b, d, r) in compared(*twins, real):
        label = f"{name} ms, {in_flight}"
        found.append(twins_table.Row(label, b, d, r, DURABLE_LATENCY if label == P50_SERIAL else None,
                                     Aim(AIM_LATENCY_RATIO)))
    found.append(twins_table.Row(f"orders/s, {IN_FLIGHT} in flight", twins[0][1].per_s, twins[1][1].per_s,
                                 real[1].per_s, DURABLE_THROUGHPUT, Aim(AIM_THROUGHPUT_SHARE, share=True), share=True))
    found.append(twins_table.Row(f"CPU ms/order, {IN_FLIGHT} in flight", _cpu(twins[0]), _cpu(twins[1]), _cpu(real)))
    return found


def report(twins: Twins, real: tuple[Run, Run]) -> None:
    print("\n" + twins_table.table(rows(twins, real), ("bare", "durable", "real sync")))
    print("(CPU: all processes but the client, Redis included; durable: bench.common.durable, 5 fsynced commits "
          "per order)")
    for name, (serial, burst) in (("bare chain", twins[0]), ("durable chain", twins[1]), ("real sync", real)):
        cpu = ", ".join(f"{process} {ms:.3f}" for process, ms in burst.cpu_ms_per_call.items())
        print(f"{name}: CPU ms per order at {IN_FLIGHT} in flight: {cpu}")
        print(f"{name}: {len(serial.latencies_ms)} + {len(burst.latencies_ms)} calls measured "
              f"({burst.elapsed_s:.1f} s at {IN_FLIGHT} in flight), {serial.errors + burst.errors} errors")


def _twin(durable: bool, sizes: LatencySizes) -> tuple[Run, Run]:
    with BareChain(durable) as chain:
        print(f"{'durable' if durable else 'bare'} chain up; measuring...", flush=True)
        return asyncio.run(latency_runs(chain.address("gateway"), SYNC, sizes, chain.pids()))


def measure(sizes: LatencySizes) -> tuple[Twins, tuple[Run, Run]]:
    """((bare chain, durable chain), real sync stack): each (1 in flight, IN_FLIGHT)."""
    twins = _twin(False, sizes), _twin(True, sizes)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as logs, Stack(free_ports=True, log_dir=Path(logs)) as stack:
        print("real stack up (sync mode, private Redis); measuring...", flush=True)
        pids = {name: process.pid for name, process in stack.processes.items()}
        if stack.redis is not None and stack.redis.process is not None:
            pids["redis"] = stack.redis.process.pid
        real = asyncio.run(latency_runs(stack.address("gateway"), SYNC, sizes, pids))
    return twins, real


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
    twins, real = measure(sizes)
    report(twins, real)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    found = figures(twins, real)
    if not args.quick:  # a smoke run's figures are not kept
        before_after.save("sync", found)
    print("\n" + before_after.table("sync", found, ROWS))


if __name__ == "__main__":
    main(sys.argv[1:])
