"""Order service adapters: the Redis order store, live updates over pub/sub, the sync chain.
They implement order_svc.ports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

import grpc
from google.protobuf.message import Message
from redis.typing import ZSetScoredMembers
from shop.v1 import (
    events_pb2,
    notification_service_pb2,
    notification_service_pb2_grpc,
    payment_service_pb2,
    payment_service_pb2_grpc,
    types_pb2,
)

from shoplib import log
from shoplib.calls import outbound
from shoplib.commit.dispatch import Dispatcher
from shoplib.commit.unit_of_work import BaseUnitOfWork, Publisher
from shoplib.commit.writes import Ack, Committer, Once, Writes
from shoplib.observability import later_work
from shoplib.store import partitions, shared_clock
from shoplib.store.connections import as_bytes

# pub/sub: every stored status change, for live watchers. One classic channel, not one sharded
# channel per partition: see order_svc.updates for why.
UPDATES_CHANNEL = "order:updates"
# Orders not settled yet, per mode and partition, scored by creation (or last re-drive) time in
# ms on the Redis server's clock (shoplib.store.shared_clock): what the reconciler resumes (sync) or
# re-drives (events), compared with that same clock, so no process's wall clock decides when.
PENDING = {types_pb2.FLOW_MODE_SYNC: "pending-sync", types_pb2.FLOW_MODE_EVENTS: "pending-events"}


def pending_key(mode: types_pb2.FlowMode.ValueType, partition: int) -> str:
    return partitions.key("order", partition, PENDING[mode])


def redriven_key(partition: int) -> str:
    """How many events-mode orders of a partition the reconciler re-drove, ever (`make streams`)."""
    return partitions.key("order", partition, "stats", "redriven")


def order_key(order_id: str) -> str:
    return partitions.key("order", partitions.partition_of_order(order_id), order_id)


def reservation_key(idempotency_key: str) -> str:
    """Where an idempotency key's order is named: in the partition the key itself decides."""
    return partitions.key("order", partitions.partition_of(idempotency_key), "key", idempotency_key)


_logger = log.get("order_svc")


class Reader(Protocol):
    """What the orders read, as redis.asyncio.Redis declares it (a read-only Sequence where redis
    says list, so the in-memory twin's list[bytes] fits too)."""

    def get(self, name: str, /) -> Awaitable[bytes | str | None]: ...
    def zrangebyscore(self, name: str, min: str, max: int, /,
                      start: int, num: int) -> Awaitable[Sequence[bytes | str] | ZSetScoredMembers]: ...
    def eval(self, script: str, numkeys: int, /, *keys_and_args: str) -> Awaitable[Any]: ...


class OrderStore:
    """Keys (shoplib.store.partitions, all of one order in its partition p): order:{p}:<id> -> Order
    bytes; order:{p}:key:<idempotency key> -> "<fingerprint> <order id>"; order:{p}:pending-<mode>
    -> orders not settled yet. Stages its writes into the unit's `writes`."""

    def __init__(self, reader: Reader, writes: Writes) -> None:
        self._reader, self._writes = reader, writes
        self._seen: dict[str, types_pb2.Order] = {}

    async def get(self, order_id: str) -> types_pb2.Order | None:
        if order_id in self._seen:  # once: a later read (after a commit) must see the store
            return self._seen.pop(order_id)
        raw = await self._reader.get(order_key(order_id))
        return None if raw is None else types_pb2.Order.FromString(as_bytes(raw))

    def remember(self, order: types_pb2.Order) -> None:
        self._seen[order.order_id] = order

    async def reserved(self, idempotency_key: str) -> tuple[str, str] | None:
        raw = await self._reader.get(reservation_key(idempotency_key))
        if raw is None:
            return None
        fingerprint, _, order_id = as_bytes(raw).decode().partition(" ")
        return fingerprint, order_id

    def reservation(self, idempotency_key: str, fingerprint: str, order_id: str) -> Once:
        return reservation_key(idempotency_key), f"{fingerprint} {order_id}"

    def settlement(self, order_id: str) -> Once:
        return partitions.key("order", partitions.partition_of_order(order_id), "settled", order_id), "1"

    def add(self, order: types_pb2.Order) -> None:
        """Stage the order, its live update, and its place among the orders not settled yet."""
        data = order.SerializeToString()
        self._writes.set(order_key(order.order_id), data)
        self._writes.publish(UPDATES_CHANNEL, order.order_id.encode() + b" " + data)
        if order.mode not in PENDING:
            return
        pending = pending_key(order.mode, partitions.partition_of_order(order.order_id))
        if order.status == types_pb2.ORDER_STATUS_PENDING:
            self._writes.zadd_now(pending, order.order_id)
        else:
            self._writes.zrem(pending, order.order_id)

    def redriven(self, order_id: str) -> None:
        """Stage a re-drive: counted, and not due again for another re-drive period (only while
        still listed: an order settled meanwhile is not put back)."""
        partition = partitions.partition_of_order(order_id)
        self._writes.zadd_now(pending_key(types_pb2.FLOW_MODE_EVENTS, partition), order_id, only_existing=True)
        self._writes.incr(redriven_key(partition))

    def settled(self, order: types_pb2.Order) -> None:
        """Stage the removal of a settled order from the orders not settled yet."""
        if order.mode in PENDING:
            self._writes.zrem(pending_key(order.mode, partitions.partition_of_order(order.order_id)), order.order_id)

    async def pending(self, mode: types_pb2.FlowMode.ValueType, after_ms: int, limit: int) -> list[str]:
        """Up to `limit` orders of each partition listed at least `after_ms` ago by the clock of
        the Redis server holding the partition (one script: TIME and the range together), oldest
        first within a partition."""
        found = []
        for partition in partitions.every():
            raw = await self._reader.eval(shared_clock.DUE, 1, pending_key(mode, partition), str(after_ms), str(limit))
            found += [item.decode() for item in cast("list[bytes]", raw)]
        return found


class OrderUnitOfWork(BaseUnitOfWork[types_pb2.Order]):
    def __init__(self, reader: Reader, committer: Committer, publisher: Publisher[types_pb2.Order],
                 ack: Ack | None = None) -> None:
        super().__init__(committer, publisher, ack)
        self.orders = OrderStore(reader, self.writes)


def outcome_event(payment: types_pb2.Payment) -> events_pb2.PaymentSucceeded | events_pb2.PaymentDeclined:
    """The fact a Charge reply stands for, as the payment service would have published it."""
    if payment.status == types_pb2.PAYMENT_STATUS_SUCCEEDED:
        return events_pb2.PaymentSucceeded(payment=payment)
    return events_pb2.PaymentDeclined(payment=payment)


class SyncChain:
    """Sync mode: after the order is stored, tell the customer, charge, and settle the order,
    each by a direct gRPC call with the caller's remaining deadline. The Charge reply becomes
    the same PaymentSucceeded / PaymentDeclined event the stream consumer handles, and goes
    through the same handler table."""

    def __init__(self, notification: grpc.aio.Channel, payment: grpc.aio.Channel,
                 dispatcher: Dispatcher[OrderUnitOfWork, types_pb2.Order]) -> None:
        self._notify = notification_service_pb2_grpc.NotificationServiceStub(notification)
        self._charge = payment_service_pb2_grpc.PaymentServiceStub(payment)
        self._dispatcher = dispatcher
        # What follows each event this service emits, by type (it emits OrderPlaced only).
        self._follow_ups: dict[type[Message], Callable[[Any], Awaitable[types_pb2.Order]]] = {
            events_pb2.OrderPlaced: self._run}

    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        return None  # the calls happen after the commit

    async def after_commit(self, emitted: Sequence[Message]) -> types_pb2.Order | None:
        settled = None
        for event in emitted:
            settled = await self._follow_ups[type(event)](event)
        return settled

    async def resend(self, emitted: Sequence[Message]) -> types_pb2.Order | None:
        """A retried PlaceOrder follows its pending order up: in the retry's trace, linked to the order's."""
        placed = [event for event in emitted if isinstance(event, events_pb2.OrderPlaced)]
        order = placed[0].order if placed else types_pb2.Order()
        with later_work.resumed("resend order", order.order_id, order.traceparent):
            return await self.after_commit(emitted)

    async def _run(self, placed: events_pb2.OrderPlaced) -> types_pb2.Order:
        order = placed.order
        await outbound.invoke("notification", "shop.v1.NotificationService/SendNotification",
                                  self._notify.SendNotification(
            notification_service_pb2.SendNotificationRequest(
                order_id=order.order_id, customer_id=order.customer_id,
                kind=types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, amount=order.total),
            **outbound.call_options()))
        charge = payment_service_pb2.ChargeRequest(order_id=order.order_id, customer_id=order.customer_id,
                                                   amount=order.total)
        charged = await outbound.invoke("payment", "shop.v1.PaymentService/Charge",
                                           self._charge.Charge(charge, **outbound.call_options()))
        uow = self._dispatcher.unit_of_work()
        uow.orders.remember(order)  # as stored a moment ago: settling needs no read
        return await self._dispatcher.handle(outcome_event(charged.payment), uow)
