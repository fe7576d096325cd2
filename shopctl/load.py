"""The workload generator: closed loop (C callers) or open loop (R orders/s), every request recorded.

`python -m shopctl load --mode sync|events --concurrency 16 --duration 10 [--rate 50] [--follow]`
drives a running `make up` stack (127.0.0.1:50051, or --target). Each PlaceOrder is recorded (start,
end, status code, order id); --follow watches each accepted order (WatchOrder) until it is terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

from shoplib.calls import balancing

MODES = {"sync": types_pb2.FLOW_MODE_SYNC, "events": types_pb2.FLOW_MODE_EVENTS}
TERMINAL = frozenset({types_pb2.ORDER_STATUS_PAID, types_pb2.ORDER_STATUS_PAYMENT_DECLINED})
CALL_TIMEOUT_S = 10.0  # one PlaceOrder: far above a healthy latency, so a hang shows as DEADLINE_EXCEEDED
FOLLOW_TIMEOUT_S = 60.0  # following one order: bounded, so an order that never settles shows as such
MAX_OPEN_IN_FLIGHT = 1024  # open loop: past this many calls in flight new ones wait (the wait counts)
DECLINE_EVERY = 20  # one order in 20 is above the payment limit (100_000 minor), so both outcomes occur
PAID_LINE = types_pb2.OrderLine(product_id="sku-book", quantity=2,
                                unit_price=types_pb2.Money(currency_code="EUR", amount_minor=1_999))
DECLINED_LINE = types_pb2.OrderLine(product_id="sku-tv", quantity=1,
                                    unit_price=types_pb2.Money(currency_code="EUR", amount_minor=150_000))


@dataclass
class Record:
    """One PlaceOrder: times are time.monotonic() seconds; `wall` is time.time() at the start."""

    key: str
    declined: bool  # the outcome this order must end with
    start: float
    wall: float
    end: float = 0.0
    code: str = ""  # "OK" or the gRPC status code name
    order_id: str = ""
    settled: float | None = None  # when it was seen terminal (the answer, or WatchOrder)


@dataclass(frozen=True)
class Workload:
    mode: str
    concurrency: int = 16  # closed loop: callers; open loop: ignored (MAX_OPEN_IN_FLIGHT bounds it)
    duration_s: float = 10.0
    rate: float | None = None  # orders per second: open loop; None: closed loop
    follow: bool = False
    follow_timeout_s: float = FOLLOW_TIMEOUT_S
    max_requests: int = 200_000  # a hard bound on any run


@dataclass
class Run:
    workload: Workload
    prefix: str = field(default_factory=lambda: f"load-{uuid.uuid4().hex[:10]}")
    records: list[Record] = field(default_factory=list)
    started: float = 0.0
    elapsed_s: float = 0.0
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def request(self, start: float | None = None) -> tuple[gw.PlaceOrderRequest, Record]:
        n, now = next(self._counter), time.monotonic()
        start = now if start is None else start  # and `wall`: the same moment on the wall clock
        record = Record(f"{self.prefix}-{n}", n % DECLINE_EVERY == DECLINE_EVERY - 1, start, time.time() - now + start)
        self.records.append(record)
        return order_request(record, self.workload.mode), record


def paid_orders(prefix: str, mode: types_pb2.FlowMode.ValueType) -> Callable[[], gw.PlaceOrderRequest]:
    """A new valid, paid order (PAID_LINE) per call, each with its own idempotency key (benches)."""
    counter = itertools.count()
    return lambda: gw.PlaceOrderRequest(idempotency_key=f"{prefix}-{next(counter)}", customer_id="cust-bench",
                                        lines=[PAID_LINE], mode=mode)


def order_request(record: Record, mode: str) -> gw.PlaceOrderRequest:
    """The request of a record: sent again with the same key, it is the same order (a safe retry)."""
    return gw.PlaceOrderRequest(idempotency_key=record.key, customer_id="cust-load", mode=MODES[mode],
                                lines=[DECLINED_LINE if record.declined else PAID_LINE])


async def place(stub: gw_grpc.GatewayServiceAsyncStub, request: gw.PlaceOrderRequest, record: Record) -> None:
    try:
        reply = await stub.PlaceOrder(request, timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        record.end, record.code = time.monotonic(), exc.code().name
        return
    record.end, record.code = time.monotonic(), "OK"
    record.order_id = reply.order.order_id
    if reply.order.status in TERMINAL:
        record.settled = record.end


async def follow(stub: gw_grpc.GatewayServiceAsyncStub, record: Record, timeout_s: float = FOLLOW_TIMEOUT_S) -> None:
    """Watch an accepted order until WatchOrder shows it terminal (no polling, no sleeping)."""
    if record.code != "OK" or record.settled is not None:
        return
    with contextlib.suppress(grpc.aio.AioRpcError):  # not settled within the bound: the accounting shows it
        async for update in stub.WatchOrder(gw.WatchOrderRequest(order_id=record.order_id), timeout=timeout_s):
            if update.order.status in TERMINAL:
                record.settled = time.monotonic()
                return


async def _closed(stub: gw_grpc.GatewayServiceAsyncStub, run: Run, deadline: float) -> None:
    async def caller() -> None:
        while time.monotonic() < deadline and len(run.records) < run.workload.max_requests:
            request, record = run.request()
            await place(stub, request, record)
            if run.workload.follow:
                await follow(stub, record, run.workload.follow_timeout_s)

    await asyncio.gather(*(caller() for _ in range(run.workload.concurrency)))


async def _open(stub: gw_grpc.GatewayServiceAsyncStub, run: Run, deadline: float) -> None:
    """Send on a fixed schedule whatever the answers do; a call's latency counts from its slot."""
    slots, tasks = asyncio.Semaphore(MAX_OPEN_IN_FLIGHT), []
    interval = 1 / float(run.workload.rate or 1)

    async def one(slot: float) -> None:
        request, record = run.request(start=slot)
        async with slots:
            await place(stub, request, record)
        if run.workload.follow:
            await follow(stub, record, run.workload.follow_timeout_s)

    for n in range(run.workload.max_requests):
        slot = run.started + n * interval
        if slot >= deadline:
            break
        await asyncio.sleep(max(0.0, slot - time.monotonic()))
        tasks.append(asyncio.create_task(one(slot)))
    await asyncio.gather(*tasks)


async def drive(stub: gw_grpc.GatewayServiceAsyncStub, run: Run) -> Run:
    """Run the workload to its end; the run's records fill up as answers arrive."""
    run.started = time.monotonic()
    await (_open if run.workload.rate else _closed)(stub, run, run.started + run.workload.duration_s)
    run.elapsed_s = max(r.end for r in run.records) - run.started if run.records else 0.0
    return run


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1] if ordered else None


def ms_summary(values_s: list[float]) -> dict[str, float | None]:
    return {f"p{q}": None if (v := percentile(values_s, q)) is None else round(v * 1000, 2) for q in (50, 95, 99, 100)}


def summary(records: list[Record], elapsed_s: float, mode: str) -> dict[str, Any]:
    ok = [r for r in records if r.code == "OK"]
    settled = [r.settled - r.start for r in ok if r.settled is not None]
    return {"mode": mode, "requests": len(records), "ok": len(ok),
            "errors": dict(Counter(r.code for r in records if r.code != "OK")), "elapsed_s": round(elapsed_s, 3),
            "throughput_per_s": round(len(ok) / elapsed_s, 1) if elapsed_s else 0.0,
            "latency_ms": ms_summary([r.end - r.start for r in ok]),
            "settled": len(settled), "to_terminal_ms": ms_summary(settled)}


def _percentiles(ms: dict[str, float | None]) -> str:
    return "  ".join(f"{'max' if q == 'p100' else q} {value}" for q, value in ms.items())


def render(result: dict[str, Any]) -> str:
    lines = [f"{result['mode']}: {result['requests']} requests, {result['ok']} OK in {result['elapsed_s']} s "
             f"= {result['throughput_per_s']} orders/s; errors {result['errors'] or 'none'}",
             f"PlaceOrder ms   {_percentiles(result['latency_ms'])}"]
    if result["settled"]:
        lines.append(f"to terminal ms  {_percentiles(result['to_terminal_ms'])}  "
                     f"({result['settled']} of {result['ok']} seen terminal)")
    return "\n".join(lines)


async def _run_cli(target: str, workload: Workload) -> dict[str, Any]:
    # a comma list of gateways is balanced over (round_robin), as the services balance their callees
    async with grpc.aio.insecure_channel(balancing.target(target), options=balancing.ROUND_ROBIN_OPTIONS) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT_S)
        except TimeoutError:
            raise SystemExit(f"load: no gateway answers at {target} (start one with `make up`)") from None
        run = await drive(gw_grpc.GatewayServiceStub(channel), Run(workload))
        return summary(run.records, run.elapsed_s, workload.mode)


def cli(args: argparse.Namespace) -> None:
    """`python -m shopctl load`: validate the arguments, drive, print the summary."""
    workload = Workload(args.mode, args.concurrency, args.duration, args.rate, args.follow)
    if workload.concurrency < 1 or not 0 < workload.duration_s <= 3600 or (workload.rate or 1) <= 0:
        raise SystemExit("load: --concurrency >= 1, 0 < --duration <= 3600 and --rate > 0, please")
    loop = f"open loop at {workload.rate}/s" if workload.rate else f"closed loop, {workload.concurrency} in flight"
    print(f"load: {workload.mode} mode, {loop}, {workload.duration_s} s against {args.target}", flush=True)
    print(render(asyncio.run(_run_cli(args.target, workload))))
