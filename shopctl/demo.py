"""python -m shopctl demo --mode sync|events: start the stack, place four orders, show who did what.

Each order gets its own correlation id (x-correlation-id), so its log lines can be picked out of
the four service logs; what the order left behind is then read back through the services' APIs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import redis.asyncio as aioredis
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import notification_service_pb2_grpc as nt_grpc
from shop.v1 import payment_service_pb2_grpc as pm_grpc
from shop.v1 import types_pb2 as t

from shopctl import demo_traces, secure, streamtrail, tokens, trail
from shopctl.stack import Stack, StackError
from shoplib import security
from shoplib.calls.outbound import field_violations
from shoplib.log import CORRELATION_HEADER
from shoplib.store import connections
from shoplib.streams import status

MODES = {"sync": t.FLOW_MODE_SYNC, "events": t.FLOW_MODE_EVENTS}
TERMINAL = frozenset({t.ORDER_STATUS_PAID, t.ORDER_STATUS_PAYMENT_DECLINED})
CALL_TIMEOUT_S = 10.0  # one call; far above a healthy answer, so a stuck service shows as an error
WATCH_TIMEOUT_S = 15.0  # events mode: how long to follow an order before giving up on it
WARM_UP_WATCH_S = 5.0  # the warm-up order is only waited for so that it does not overlap order 1


@dataclass(frozen=True)
class Scenario:
    label: str  # also the correlation id's suffix
    key: str  # the idempotency key's suffix: the repeat shares the paid order's key
    title: str
    customer_id: str
    quantity: int
    unit_minor: int
    currency: str = "EUR"
    repeats: str = ""  # label of the order this one repeats


SCENARIOS = (
    Scenario("1-paid", "paid", "1. A paid order: 2 x 19.99 EUR", "cust-ada", 2, 1999),
    Scenario("2-declined", "declined", "2. A declined order: 1 x 1,500.00 EUR (the limit is 1,000.00)",
             "cust-bob", 1, 150_000),
    Scenario("3-invalid", "invalid", "3. An invalid order: no customer, quantity 0, currency EUX", "", 0, 1999, "EUX"),
    Scenario("4-repeat", "paid", "4. Order 1 again, same idempotency key: same order, no new charge",
             "cust-ada", 2, 1999, repeats="1-paid"),
)


@dataclass
class Outcome:
    label: str
    status: str
    client_ms: float
    terminal_ms: float | None = None
    order_id: str = ""
    charges: int = 0  # payment.charged lines in this request's trail


@dataclass
class Clients:
    gateway: gw_grpc.GatewayServiceAsyncStub
    payment: pm_grpc.PaymentServiceAsyncStub
    notification: nt_grpc.NotificationServiceAsyncStub


@contextlib.asynccontextmanager
async def _clients(stack: Stack) -> AsyncIterator[Clients]:
    """The gateway, and payment and notification directly, for reading back what happened."""
    token = tokens.development_token("demo", operator=True) if security.enabled() else ""  # for several customers
    async with (secure.human_channel(stack.address("gateway"), token) as g,
                secure.human_channel(stack.address("payment"), "") as p,
                secure.human_channel(stack.address("notification"), "") as n):
        yield Clients(gw_grpc.GatewayServiceStub(g), pm_grpc.PaymentServiceStub(p),
                      nt_grpc.NotificationServiceStub(n))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _status(status: t.OrderStatus.ValueType) -> str:
    return t.OrderStatus.Name(status).removeprefix("ORDER_STATUS_")


def print_event_trail(stack: Stack, order_id: str) -> None:
    """Events mode: the stream entries this order caused, and which group handled each."""
    streamtrail.print_stream_trail(stack.redis_url, order_id, **secure.tool_redis_kwargs(stack.redis))


async def _place(clients: Clients, scenario: Scenario, mode: str, run_id: str) -> gw.PlaceOrderResponse:
    line = t.OrderLine(product_id="book-42", quantity=scenario.quantity,
                       unit_price=t.Money(currency_code=scenario.currency, amount_minor=scenario.unit_minor))
    request = gw.PlaceOrderRequest(idempotency_key=f"demo-{run_id}-{scenario.key}", customer_id=scenario.customer_id,
                                   lines=[line], mode=MODES[mode])
    cid = f"demo-{run_id}-{scenario.label}"
    metadata = ((CORRELATION_HEADER, cid), *demo_traces.metadata(cid))  # traceparent with TRACE=1
    return await clients.gateway.PlaceOrder(request, timeout=CALL_TIMEOUT_S, metadata=metadata)


async def _watch(clients: Clients, order_id: str, limit_s: float = WATCH_TIMEOUT_S) -> AsyncIterator[t.Order]:
    """The order at every status change until terminal (the server ends the stream there)."""
    call = clients.gateway.WatchOrder(gw.WatchOrderRequest(order_id=order_id), timeout=limit_s)
    async for reply in call:
        yield reply.order


async def _follow(clients: Clients, order: t.Order, started: float) -> tuple[t.Order, float | None]:
    """Events mode: follow with WatchOrder; the time to terminal counts from PlaceOrder."""
    print("  following it with GatewayService.WatchOrder:")
    try:
        async for order in _watch(clients, order.order_id):  # noqa: B020 - the latest state is the point
            print(f"    {_ms(started):7.1f} ms  {_status(order.status)}")
            if order.status in TERMINAL:
                return order, _ms(started)
    except grpc.aio.AioRpcError as error:
        print(f"    gave up: {error.code().name} after {_ms(started):.0f} ms (are the event consumers running?)")
    return order, None


def _show_refusal(error: grpc.aio.AioRpcError, client_ms: float) -> Outcome:
    print(f"  answer after {client_ms:.1f} ms: {error.code().name}  {error.details()}")
    for field, description in field_violations(error):
        print(f"    {field:<36} {description}")
    return Outcome("", error.code().name, client_ms)


async def _show_order(clients: Clients, mode: str, order: t.Order, started: float) -> Outcome:
    client_ms = _ms(started)
    print(f"  answer after {client_ms:.1f} ms: {_status(order.status)}, order {order.order_id}")
    terminal_ms: float | None = client_ms  # sync mode: the answer carries the final status
    if mode == "events":
        order, terminal_ms = await _follow(clients, order, started)
    return Outcome("", _status(order.status), client_ms, terminal_ms, order.order_id)


async def _show(stack: Stack, clients: Clients, mode: str, run_id: str, scenario: Scenario) -> Outcome:
    cid = f"demo-{run_id}-{scenario.label}"
    print(f"\n{scenario.title}\n  correlation id {cid}")
    started = time.perf_counter()
    try:
        outcome = await _show_order(clients, mode, (await _place(clients, scenario, mode, run_id)).order, started)
    except grpc.aio.AioRpcError as error:
        outcome = _show_refusal(error, _ms(started))
    assert stack.log_dir is not None
    demo_traces.print_trace_id(cid)
    lines = trail.print_log_trail(stack.log_dir, cid)
    if outcome.order_id:
        if mode == "events":
            print_event_trail(stack, outcome.order_id)
        await trail.print_read_back(clients.payment, clients.notification, outcome.order_id)
    outcome.label, outcome.charges = scenario.label, sum(line.event == "payment.charged" for line in lines)
    return outcome


def _compare(first: Outcome, again: Outcome) -> None:
    same = "yes" if first.order_id == again.order_id else f"NO ({first.order_id})"
    print(f"  same order id as {first.label}: {same}; charges made by this request: {again.charges}")


async def _warm_up(clients: Clients, mode: str, run_id: str) -> None:
    """One order nobody looks at, so the first shown order does not pay for opening connections."""
    order = (await _place(clients, Scenario("warm-up", "warm-up", "", "cust-warm", 1, 100), mode, run_id)).order
    if mode == "events":
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for _ in _watch(clients, order.order_id, WARM_UP_WATCH_S):
                pass


async def _demo(stack: Stack, mode: str, run_id: str) -> list[Outcome]:
    outcomes: dict[str, Outcome] = {}
    async with _clients(stack) as clients:
        await _warm_up(clients, mode, run_id)
        for scenario in SCENARIOS:
            outcomes[scenario.label] = await _show(stack, clients, mode, run_id, scenario)
            if scenario.repeats:
                _compare(outcomes[scenario.repeats], outcomes[scenario.label])
    return list(outcomes.values())


async def _operations_view(stack: Stack) -> None:
    """What `make streams` shows: streams, groups, consumers, lag, oldest pending, dead letters."""
    client = (connections.connect(stack.redis_url) if connections.clustered()  # a cluster client: every partition
              else aioredis.Redis.from_url(stack.redis_url, **secure.tool_redis_kwargs(stack.redis)))
    print("\nOperations view (make streams):")
    print("  " + status.render(*await status.collect(client)).replace("\n", "\n  "))
    await client.aclose()


def _summary(outcomes: list[Outcome]) -> None:
    print(f"\nSummary\n  {'order':<12} {'status':<18} {'client ms':>9} {'terminal ms':>11} {'charges':>7}  order id")
    for o in outcomes:
        terminal = f"{o.terminal_ms:.1f}" if o.terminal_ms is not None else "-"
        print(f"  {o.label:<12} {o.status:<18} {o.client_ms:>9.1f} {terminal:>11} {o.charges:>7}  {o.order_id or '-'}")


def run(mode: str) -> None:
    # `kill PID` ends the demo like Ctrl-C does: the `with` blocks stop Redis and the services.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_id = uuid.uuid4().hex[:6]
    logs = tempfile.mkdtemp(prefix="shop-demo-")
    private_cluster = connections.clustered() and not os.environ.get("REDIS_URL")
    store = "a private Redis Cluster (3 masters + 3 replicas)" if private_cluster else "Redis"
    profile = (" under the secure profile (mTLS between services, a bearer token at the gateway, Redis ACL users)"
               if security.enabled() else "")
    print(f"Demo, {mode} mode: starting {store} and four services{profile} (logs in {logs}, removed at the end)...")
    try:
        _run(mode, run_id, logs)
    except StackError:
        raise  # the logs stay: the error names them, and they say why a service stopped
    except BaseException:
        shutil.rmtree(logs, ignore_errors=True)
        raise
    shutil.rmtree(logs, ignore_errors=True)


def _run(mode: str, run_id: str, logs: str) -> None:
    with Stack(free_ports=True, log_dir=Path(logs), env={"LOG_LEVEL": "debug"}) as stack:
        print("  " + ", ".join(f"{name} {stack.address(name)}" for name in ("gateway", "order", "payment",
                                                                            "notification")))
        print("  one warm-up order first, so the shown latencies do not include opening connections")
        print("  in the log trails, rpc.ok/rpc.failed is written when a call ends; ms= is its duration")
        outcomes = asyncio.run(_demo(stack, mode, run_id))
        if mode == "events":
            asyncio.run(_operations_view(stack))
    _summary(outcomes)
    print("\nStack stopped.")
    demo_traces.print_hint([o.order_id for o in outcomes])
