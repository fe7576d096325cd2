"""Helpers of the events-mode integration tests: bounded waits, order builders, stack clients,
and a view of the streams that says when every group has caught up.

Only real things here: real Redis clients, real gRPC stubs. Nothing is faked.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import redis
import redis.asyncio as aioredis
from shop.v1 import (
    gateway_service_pb2,
    gateway_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
    payment_service_pb2,
    payment_service_pb2_grpc,
    types_pb2,
)

from payment_svc.adapters import ledger_key
from shopctl.stack import Stack
from shoplib import catalogue
from shoplib.commit.committers import PipelinedCommitter
from shoplib.commit.unit_of_work import StreamPublisher
from shoplib.commit.writes import Committer, Writes
from shoplib.store import connections, partitions
from shoplib.streams.consumer import StreamConsumer, Subscription
from shoplib.streams.settings import DEAD_LETTERS, ConsumerSettings

# Every wait in these tests is bounded by this unless a test says otherwise: long enough for a
# loaded 2-core machine, short enough that a lost event fails the test instead of hanging it.
WAIT_S = 10.0
POLL_S = 0.05
# Deadline of each gRPC call the tests make.
CALL_TIMEOUT_S = 5.0

# Small consumer timings so reclaim, dead letters and maintenance happen within a second.
FAST = ConsumerSettings(block_ms=100, claim_idle_ms=500, maintenance_interval_s=0.2, max_deliveries=3)
# The same timings for service processes (ConsumerSettings.from_env reads these).
FAST_ENV = {"STREAM_BLOCK_MS": str(FAST.block_ms), "STREAM_CLAIM_IDLE_MS": str(FAST.claim_idle_ms),
            "STREAM_MAINTENANCE_S": str(FAST.maintenance_interval_s), "STREAM_MAX_DELIVERIES": str(FAST.max_deliveries)}

TERMINAL = {types_pb2.ORDER_STATUS_PAID, types_pb2.ORDER_STATUS_PAYMENT_DECLINED}
# The streams of partition 0 when it is the only one (the `one_partition` fixture): its tag's band
# is every slot, so its tag is the plain {p0} (tests/unit/test_partitions.py holds it to that).
# Spelled out: at import PARTITIONS is not 1 yet, and the tags of partition 0 of 16 differ.
ALONE = "{p0}"
ORDER_STREAM = f"{catalogue.ORDER_EVENTS}:{ALONE}"
PAYMENT_STREAM = f"{catalogue.PAYMENT_EVENTS}:{ALONE}"
DEAD_STREAM = f"{DEAD_LETTERS}:{ALONE}"
LEDGER = f"payment:{ALONE}:ledger"


def ledger(order_id: str) -> str:
    """The ledger of the order's partition."""
    return ledger_key(partitions.partition_of_order(order_id))


def in_partition(stream: str, order_id: str) -> str:
    """The stream (base name) of the order's partition."""
    return partitions.stream(stream, partitions.partition_of_order(order_id))


def wait_until(predicate: Callable[[], Any], within_s: float = WAIT_S, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what` past `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what} (last value: {result!r})")
        time.sleep(POLL_S)


async def async_wait_until(predicate: Callable[[], Any], within_s: float = WAIT_S, what: str = "condition"
                           ) -> Any:
    """`wait_until` for the event loop; `predicate` may be a coroutine function."""
    deadline = time.monotonic() + within_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what} (last value: {result!r})")
        await asyncio.sleep(POLL_S)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def line(product_id: str, quantity: int, amount_minor: int) -> types_pb2.OrderLine:
    return types_pb2.OrderLine(product_id=product_id, quantity=quantity,
                               unit_price=types_pb2.Money(currency_code="EUR", amount_minor=amount_minor))


# The payment service declines totals above 1,000.00 (100_000 minor units) by default.
PAID_LINES = (line("sku-book", 2, 1_999), line("sku-pen", 1, 250))
DECLINED_LINES = (line("sku-tv", 1, 150_000),)


def s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# ---------------------------------------------------------------------------------------------
# Streams: is everything processed?
# ---------------------------------------------------------------------------------------------

def lagging(client: redis.Redis, streams: tuple[str, ...] = (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS)
            ) -> list[str]:
    """The groups that have not read to the end of their stream, or still have entries pending."""
    behind = []
    for stream in (one for base in streams for one in partitions.streams(base)):
        if not client.exists(stream):
            continue
        last = s(client.xinfo_stream(stream)["last-generated-id"])
        for group in client.xinfo_groups(stream):
            if group["pending"] or s(group["last-delivered-id"]) != last:
                behind.append(f"{stream}/{s(group['name'])}: pending {group['pending']}, "
                              f"read to {s(group['last-delivered-id'])} of {last}")
    return behind


def wait_caught_up(client: redis.Redis, within_s: float = WAIT_S) -> None:
    """Wait until every group of every stream has processed every entry."""
    deadline = time.monotonic() + within_s
    while behind := lagging(client):
        if time.monotonic() > deadline:
            raise AssertionError(f"consumer groups still behind after {within_s}s: {behind}")
        time.sleep(POLL_S)


def entries(client: redis.Redis, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of `stream` (base name), partition after partition."""
    return [entry for one in partitions.streams(stream) for entry in client.xrange(one)]


def subjects(client: redis.Redis, stream: str) -> list[str]:
    return [s(fields[b"subject"]) for _, fields in entries(client, stream)]


def order_keys(client: redis.Redis) -> set[str]:
    return {s(key).rpartition(":")[2] for key in client.scan_iter(match="order:{p*}:ord_*", count=1000)}


def ledger_count(client: redis.Redis, order_id: str) -> int:
    return sum(1 for item in client.lrange(ledger(order_id), 0, -1) if s(item) == order_id)


def log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a service process (other lines, e.g. tracebacks, are skipped)."""
    found = []
    for raw in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            found.append(json.loads(raw))
    return found


# ---------------------------------------------------------------------------------------------
# A stack's public and internal APIs, through the generated stubs
# ---------------------------------------------------------------------------------------------

@dataclass
class Clients:
    gateway: gateway_service_pb2_grpc.GatewayServiceStub
    payment: payment_service_pb2_grpc.PaymentServiceStub
    notification: notification_service_pb2_grpc.NotificationServiceStub
    channels: list[grpc.Channel]

    @classmethod
    def of(cls, stack: Any) -> Clients:
        channels = [grpc.insecure_channel(stack.address(n)) for n in ("gateway", "payment", "notification")]
        return cls(gateway_service_pb2_grpc.GatewayServiceStub(channels[0]),
                   payment_service_pb2_grpc.PaymentServiceStub(channels[1]),
                   notification_service_pb2_grpc.NotificationServiceStub(channels[2]), channels)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def place(self, mode: int, lines: tuple[types_pb2.OrderLine, ...] = PAID_LINES,
              key: str | None = None) -> types_pb2.Order:
        reply = self.gateway.PlaceOrder(gateway_service_pb2.PlaceOrderRequest(
            idempotency_key=key or new_id("key"), customer_id=new_id("cust"), lines=lines, mode=mode),
            timeout=CALL_TIMEOUT_S)
        return reply.order

    def get(self, order_id: str) -> types_pb2.Order:
        return self.gateway.GetOrder(gateway_service_pb2.GetOrderRequest(order_id=order_id),
                                     timeout=CALL_TIMEOUT_S).order

    def follow(self, order_id: str, timeout: float = WAIT_S) -> list[types_pb2.Order]:
        """Every status WatchOrder streams, until the order is terminal (the stream then ends)."""
        seen = [reply.order for reply in self.gateway.WatchOrder(
            gateway_service_pb2.WatchOrderRequest(order_id=order_id), timeout=timeout)]
        assert seen and seen[-1].status in TERMINAL, f"WatchOrder ended before a terminal status: {seen}"
        return seen

    def payment_of(self, order_id: str) -> types_pb2.Payment:
        return self.payment.GetPayment(payment_service_pb2.GetPaymentRequest(order_id=order_id),
                                       timeout=CALL_TIMEOUT_S).payment

    def notification_kinds(self, order_id: str) -> list[int]:
        reply = self.notification.ListNotifications(
            notification_service_pb2.ListNotificationsRequest(order_id=order_id), timeout=CALL_TIMEOUT_S)
        return sorted(n.kind for n in reply.notifications)


# Concurrent callers: enough that calls are in flight whenever a process or Redis goes away.
LOAD_THREADS = 4


class Load:
    """Threads placing events-mode orders through the gateway until stopped."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.ok: list[str] = []
        self.failed: list[grpc.StatusCode] = []
        self.failures: list[str] = []
        self._stop, self._go = threading.Event(), threading.Event()
        self._go.set()
        self._in_flight = 0
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(LOAD_THREADS)]

    def _run(self) -> None:
        while not self._stop.is_set():
            self._go.wait()
            with self._lock:
                self._in_flight += 1
            try:
                self.ok.append(self.clients.place(types_pb2.FLOW_MODE_EVENTS).order_id)
            except grpc.RpcError as exc:
                self.failed.append(exc.code())
                self.failures.append(f"{exc.code().name}: {exc.details()}")
            finally:
                with self._lock:
                    self._in_flight -= 1

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No call in flight while the body runs. Needed around process starts from this process:
        LocalRedis.start and Stack.start_service fork with a Python preexec_fn, and a fork while
        gRPC calls are in flight can abort the child before it execs (see the report)."""
        self._go.clear()
        try:
            wait_until(lambda: self._in_flight == 0, what="calls in flight to finish")
            yield
        finally:
            self._go.set()

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._go.set()
        for thread in self.threads:
            thread.join(WAIT_S)


# ---------------------------------------------------------------------------------------------
# In-process consumers on a real Redis
# ---------------------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def consuming(url: str, make: Callable[[aioredis.Redis, Committer], Subscription],
                    settings: ConsumerSettings = FAST) -> AsyncIterator[StreamConsumer]:
    """A real StreamConsumer wired as the services wire theirs (pooled client, pipelined commit
    script, a separate connection for blocking reads), running as a task."""
    client = connections.connect(url)
    reader = connections.blocking_client(url, settings.block_ms / 1000)
    committer = PipelinedCommitter(client)
    consumer = StreamConsumer(client, reader, committer, make(client, committer), settings)
    task = asyncio.create_task(consumer.run())
    consumer.task = task  # type: ignore[attr-defined]
    try:
        yield consumer
    finally:
        consumer.stop()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, settings.block_ms / 1000 + 5)
        await client.aclose()
        await reader.aclose()


def alive(consumer: StreamConsumer) -> bool:
    task: asyncio.Task[None] = consumer.task  # type: ignore[attr-defined]
    return not task.done()


def task_error(consumer: StreamConsumer) -> str:
    """Why a consumer's run() ended ('' while it runs): its exception, type and message."""
    task: asyncio.Task[None] = consumer.task  # type: ignore[attr-defined]
    if not task.done():
        return ""
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return "returned" if error is None else f"{type(error).__name__}: {error}"


async def publish(committer: Committer, *messages: Any, source: str = "/tests/events") -> None:
    """Append real envelopes of `messages` to their streams, as a producing service would."""
    writes = Writes()
    StreamPublisher(source).stage(list(messages), writes)
    await committer.commit(writes)


# ---------------------------------------------------------------------------------------------
# The services' own subscriptions, entered through their bootstraps (as the processes wire them)
# ---------------------------------------------------------------------------------------------

def service_subscription(service: str, consumer: str) -> Callable[[aioredis.Redis, Committer], Subscription]:
    """make(client, committer) -> the subscription `service` wires in its bootstrap, consumer named."""
    from notification_svc import bootstrap as notification_bootstrap
    from notification_svc import consumers as notification_consumers
    from order_svc import bootstrap as order_bootstrap
    from order_svc import consumers as order_consumers
    from payment_svc import bootstrap as payment_bootstrap
    from payment_svc import consumers as payment_consumers
    from payment_svc.config import Settings as PaymentSettings

    payment_settings = PaymentSettings(port=0, redis_url="", notification_addr="", instance=consumer,
                                       decline_above_minor=100_000, delay_ms=0)
    makers: dict[str, Callable[[aioredis.Redis, Committer], Subscription]] = {
        "payment": lambda client, committer: payment_consumers.subscription(
            consumer, payment_bootstrap.dispatcher(client, committer, payment_settings)),
        "notification": lambda client, committer: notification_consumers.subscription(
            consumer, notification_bootstrap.dispatcher(client, committer)),
        "order": lambda client, committer: order_consumers.subscription(
            consumer, order_bootstrap.dispatcher(client, committer)),
    }
    return makers[service]


def replace_payment(stack: Stack, instance: str, **extra_env: str) -> None:
    """Stop the payment worker and start another one, named `instance`, with `extra_env`."""
    stack.stop_service("payment")
    saved = dict(stack.env)
    stack.env.update(SERVICE_INSTANCE=instance, **extra_env)
    try:
        stack.start_service("payment")
    finally:
        stack.env = saved
