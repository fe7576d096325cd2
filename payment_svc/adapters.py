"""Payment adapters (payment_svc.ports): the Redis payment store and the sync-mode receipt call."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

import grpc
from google.protobuf.message import Message
from shop.v1 import events_pb2, notification_service_pb2, notification_service_pb2_grpc, types_pb2

from shoplib.calls import outbound
from shoplib.commit.unit_of_work import BaseUnitOfWork, Publisher
from shoplib.commit.writes import Ack, Committer, Once, Writes
from shoplib.store import partitions
from shoplib.store.connections import as_bytes


def ledger_key(partition: int) -> str:
    """One entry per charge ever made in a partition: what "charged exactly once" is checked on."""
    return partitions.key("payment", partition, "ledger")


def payment_key(order_id: str) -> str:
    return partitions.key("payment", partitions.partition_of_order(order_id), order_id)


class Reader(Protocol):
    """What the payments read, as redis.asyncio.Redis declares it."""

    def get(self, name: str, /) -> Awaitable[bytes | str | None]: ...


class PaymentStore:
    """Keys (in the order's partition p): payment:{p}:<order id> -> Payment bytes (written once,
    NX); payment:{p}:ledger (list).
    Stages its writes into the unit's `writes`."""

    def __init__(self, reader: Reader, writes: Writes) -> None:
        self._reader, self._writes = reader, writes

    async def get(self, order_id: str) -> types_pb2.Payment | None:
        raw = await self._reader.get(payment_key(order_id))
        return None if raw is None else types_pb2.Payment.FromString(as_bytes(raw))

    def add(self, payment: types_pb2.Payment) -> None:
        self._writes.rpush(ledger_key(partitions.partition_of_order(payment.order_id)), payment.order_id)

    def charge_once(self, payment: types_pb2.Payment) -> Once:
        return payment_key(payment.order_id), payment.SerializeToString()


class PaymentUnitOfWork(BaseUnitOfWork[None]):
    def __init__(self, reader: Reader, committer: Committer, publisher: Publisher[None],
                 ack: Ack | None = None) -> None:
        super().__init__(committer, publisher, ack)
        self.payments = PaymentStore(reader, self.writes)


_KIND = {
    events_pb2.PaymentSucceeded: types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT,
    events_pb2.PaymentDeclined: types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED,
}


class SyncReceipts:
    """Sync mode: after the charge is stored, send the receipt or decline notice directly."""

    def __init__(self, notification: grpc.aio.Channel) -> None:
        self._notify = notification_service_pb2_grpc.NotificationServiceStub(notification)

    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        return None

    async def after_commit(self, emitted: Sequence[Message]) -> None:
        for event in emitted:
            # The payment handlers emit only these two (domain.outcome_event).
            assert isinstance(event, events_pb2.PaymentSucceeded | events_pb2.PaymentDeclined)
            await self._send(event)

    async def resend(self, emitted: Sequence[Message]) -> None:
        await self.after_commit(emitted)

    async def _send(self, event: events_pb2.PaymentSucceeded | events_pb2.PaymentDeclined) -> None:
        payment = event.payment
        await outbound.invoke("notification", "shop.v1.NotificationService/SendNotification",
                                  self._notify.SendNotification(
            notification_service_pb2.SendNotificationRequest(
                order_id=payment.order_id, customer_id=payment.customer_id, kind=_KIND[type(event)],
                amount=payment.amount, reason=payment.decline_reason), **outbound.call_options()))
