"""Order service adapters: the Redis order store, live updates over pub/sub, the sync chain."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

import grpc
import redis.asyncio as aioredis
from google.protobuf.message import DecodeError, Message
from redis.typing import ZSetRangeResponse
from shop.v1 import (
    events_pb2,
    notification_service_pb2,
    notification_service_pb2_grpc,
    payment_service_pb2,
    payment_service_pb2_grpc,
    types_pb2,
)

from shoplib import errors, grpc_client, log, outage
from shoplib.bounds import MAX_WATCHERS
from shoplib.redis_conn import as_bytes
from shoplib.tx import Ack, Committer, Writes
from shoplib.uow import Publisher, UnitOfWork

UPDATES_CHANNEL = "order:updates"  # pub/sub: every stored status change, for live watchers
# Orders not settled yet, per mode, scored by creation (or last re-drive) time in ms: what the
# reconciler resumes (sync) or re-drives (events).
PENDING_SYNC = "order:pending-sync"
PENDING_EVENTS = "order:pending-events"
PENDING = {types_pb2.FLOW_MODE_SYNC: PENDING_SYNC, types_pb2.FLOW_MODE_EVENTS: PENDING_EVENTS}
# How many events-mode orders the reconciler re-drove, ever (shown by `make streams`).
REDRIVEN = "order:stats:redriven"
_logger = log.get("order_svc")


class Reader(Protocol):
    """What the orders read, as redis.asyncio.Redis declares it."""

    def get(self, name: str, /) -> Awaitable[bytes | str | None]: ...
    def zrangebyscore(self, name: str, min: str, max: int, /,
                      start: int, num: int) -> Awaitable[ZSetRangeResponse]: ...


class Orders:
    """Keys: order:{id} -> Order bytes; order:key:{idempotency key} -> "{fingerprint} {order id}"."""

    def __init__(self, reader: Reader, uow: UnitOfWork) -> None:
        self._reader, self._uow = reader, uow

    async def get(self, order_id: str) -> types_pb2.Order | None:
        raw = await self._reader.get(f"order:{order_id}")
        return None if raw is None else types_pb2.Order.FromString(as_bytes(raw))

    async def claimed(self, idempotency_key: str) -> tuple[str, str] | None:
        """(fingerprint, order id) of the order placed with this key, if any."""
        raw = await self._reader.get(f"order:key:{idempotency_key}")
        if raw is None:
            return None
        fingerprint, _, order_id = as_bytes(raw).decode().partition(" ")
        return fingerprint, order_id

    @staticmethod
    def claim(idempotency_key: str, fingerprint: str, order_id: str) -> tuple[str, str]:
        return f"order:key:{idempotency_key}", f"{fingerprint} {order_id}"

    @staticmethod
    def settled_marker(order_id: str) -> tuple[str, str]:
        return f"order:settled:{order_id}", "1"

    def add(self, order: types_pb2.Order) -> None:
        """Stage the order, its live update, and its place among the orders not settled yet."""
        data = order.SerializeToString()
        self._uow.writes.set(f"order:{order.order_id}", data)
        self._uow.writes.publish(UPDATES_CHANNEL, order.order_id.encode() + b" " + data)
        pending = PENDING.get(order.mode)
        if pending is None:
            return
        if order.status == types_pb2.ORDER_STATUS_PENDING:
            self._uow.writes.zadd(pending, order.create_time.ToMilliseconds(), order.order_id)
        else:
            self._uow.writes.zrem(pending, order.order_id)

    def redriven(self, order_id: str, now_ms: int) -> None:
        """Stage a re-drive: counted, and not due again for another re-drive period."""
        self._uow.writes.zadd(PENDING_EVENTS, now_ms, order_id)
        self._uow.writes.incr(REDRIVEN)

    async def pending(self, mode: types_pb2.FlowMode.ValueType, older_than_ms: int, limit: int) -> list[str]:
        raw = await self._reader.zrangebyscore(PENDING[mode], "-inf", older_than_ms, start=0, num=limit)
        return [item.decode() for item in cast("list[bytes]", raw)]  # members only: no withscores


class OrderUnitOfWork(UnitOfWork):
    def __init__(self, reader: Reader, committer: Committer, publisher: Publisher,
                 ack: Ack | None = None) -> None:
        super().__init__(committer, publisher, ack)
        self.orders = Orders(reader, self)


class SyncChain:
    """Sync mode: after the order is stored, tell the customer, charge, and settle the order,
    each by a direct gRPC call with the caller's remaining deadline."""

    def __init__(self, notification: grpc.aio.Channel, payment: grpc.aio.Channel,
                 settle: Callable[[types_pb2.Order, types_pb2.Payment], Awaitable[types_pb2.Order]]) -> None:
        self._notify = notification_service_pb2_grpc.NotificationServiceStub(notification)
        self._charge = payment_service_pb2_grpc.PaymentServiceStub(payment)
        self._settle = settle
        # by event type; each handler takes the event of its key's type
        self._handlers: dict[type[Message], Callable[[Any], Awaitable[types_pb2.Order]]] = {
            events_pb2.OrderPlaced: self._on_order_placed}

    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        return None  # the calls happen after the commit

    async def after_commit(self, emitted: Sequence[Message]) -> list[object]:
        return [await self._handlers[type(event)](event) for event in emitted]

    async def redeliver(self, emitted: Sequence[Message]) -> list[object]:
        return await self.after_commit(emitted)

    async def _on_order_placed(self, event: events_pb2.OrderPlaced) -> types_pb2.Order:
        order = event.order
        await grpc_client.invoke("notification", self._notify.SendNotification(
            notification_service_pb2.SendNotificationRequest(
                order_id=order.order_id, customer_id=order.customer_id,
                kind=types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, amount=order.total),
            **grpc_client.call_options()))
        charged = await grpc_client.invoke("payment", self._charge.Charge(payment_service_pb2.ChargeRequest(
            order_id=order.order_id, customer_id=order.customer_id, amount=order.total),
            **grpc_client.call_options()))
        return await self._settle(order, charged.payment)


# A watcher re-reads the order after this long without news, in case a pub/sub message was
# lost (pub/sub is fire-and-forget); status changes themselves arrive by push.
RESYNC_S = 5.0
# Updates kept per watcher: an order has few statuses; a watcher too slow to read keeps the latest.
WATCH_QUEUE = 8


class OrderUpdates:
    """One pub/sub subscription per process, fanned out to the watchers of each order.
    A message that is not one of ours is logged and skipped; the listener never dies of it."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._watchers: dict[str, set[asyncio.Queue[types_pb2.Order]]] = defaultdict(set)
        self._count = 0

    @contextlib.asynccontextmanager
    async def watch(self, order_id: str) -> AsyncIterator[asyncio.Queue[types_pb2.Order]]:
        if self._count >= MAX_WATCHERS:
            raise errors.ResourceExhausted(f"too many orders followed at once (at most {MAX_WATCHERS}); retry later")
        queue: asyncio.Queue[types_pb2.Order] = asyncio.Queue(maxsize=WATCH_QUEUE)
        self._watchers[order_id].add(queue)
        self._count += 1
        try:
            yield queue
        finally:
            self._count -= 1
            self._watchers[order_id].discard(queue)
            if not self._watchers[order_id]:
                del self._watchers[order_id]

    async def run(self) -> None:
        """Listen for ever; reconnects after Redis comes back (watchers resync meanwhile). Any
        other error ends the task, and its supervisor logs it and starts it again."""
        while True:
            try:
                await self._listen()
            except Exception as exc:
                if not outage.is_outage(exc):
                    raise
                _logger.warning("order.updates_disconnected", error=outage.describe(exc))
                await asyncio.sleep(RESYNC_S / 10)

    async def _listen(self) -> None:
        async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(UPDATES_CHANNEL)
            async for message in pubsub.listen():
                self._deliver(message.get("data"))

    def _deliver(self, data: object) -> None:
        """Hand one update to the watchers of its order; anything else is logged and skipped."""
        if not isinstance(data, bytes):
            return
        raw_id, _, payload = data.partition(b" ")
        watchers = self._watchers.get(raw_id.decode(errors="replace"))
        if not watchers:  # most updates have no watcher: do not even parse them
            return
        try:
            order = types_pb2.Order.FromString(payload)
        except DecodeError:
            _logger.warning("order.update_malformed", channel=UPDATES_CHANNEL, bytes=len(data))
            return
        for queue in watchers:
            if queue.full():  # a watcher that does not read only needs the latest status
                queue.get_nowait()
            queue.put_nowait(order)
