"""Payment adapters: the Redis payment store and the sync-mode receipt call."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

import grpc
from google.protobuf.message import Message
from shop.v1 import events_pb2, notification_service_pb2, notification_service_pb2_grpc, types_pb2

from shoplib import grpc_client
from shoplib.redis_conn import as_bytes
from shoplib.tx import Ack, Committer
from shoplib.uow import Publisher, UnitOfWork

LEDGER = "payment:ledger"  # one entry per charge ever made: what "charged exactly once" is checked on


class Reader(Protocol):
    """What the payments read, as redis.asyncio.Redis declares it."""

    def get(self, name: str, /) -> Awaitable[bytes | str | None]: ...


class Payments:
    """Keys: payment:{order id} -> Payment bytes (written once, NX); payment:ledger (list)."""

    def __init__(self, reader: Reader, uow: UnitOfWork) -> None:
        self._reader, self._uow = reader, uow

    async def get(self, order_id: str) -> types_pb2.Payment | None:
        raw = await self._reader.get(f"payment:{order_id}")
        return None if raw is None else types_pb2.Payment.FromString(as_bytes(raw))

    def record(self, payment: types_pb2.Payment) -> tuple[str, bytes]:
        """Stage the ledger entry; returns the once key that makes the whole charge happen once."""
        self._uow.writes.rpush(LEDGER, payment.order_id)
        return f"payment:{payment.order_id}", payment.SerializeToString()


class PaymentUnitOfWork(UnitOfWork):
    def __init__(self, reader: Reader, committer: Committer, publisher: Publisher,
                 ack: Ack | None = None) -> None:
        super().__init__(committer, publisher, ack)
        self.payments = Payments(reader, self)


_KIND = {
    events_pb2.PaymentSucceeded: types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT,
    events_pb2.PaymentDeclined: types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED,
}


class SyncReceipts:
    """Sync mode: after the charge is stored, send the receipt or decline notice directly."""

    def __init__(self, notification: grpc.aio.Channel) -> None:
        self._notify = notification_service_pb2_grpc.NotificationServiceStub(notification)

    def stage(self, emitted: Sequence[Message], writes: object) -> None:
        return None

    async def after_commit(self, emitted: Sequence[Message]) -> list[object]:
        sent: list[object] = []
        for event in emitted:
            payment = event.payment  # type: ignore[attr-defined]
            await grpc_client.invoke("notification", self._notify.SendNotification(
                notification_service_pb2.SendNotificationRequest(
                    order_id=payment.order_id, customer_id=payment.customer_id, kind=_KIND[type(event)],
                    amount=payment.amount, reason=payment.decline_reason), **grpc_client.call_options()))
            sent.append(event)
        return sent

    async def redeliver(self, emitted: Sequence[Message]) -> list[object]:
        return await self.after_commit(emitted)
