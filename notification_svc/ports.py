"""What the notification handlers depend on: small interfaces, with the Redis adapter behind them
(notification_svc.adapters) and in-memory twins in the unit tests. Loads neither grpc nor redis."""

from __future__ import annotations

from typing import Protocol

from google.protobuf.message import Message
from shop.v1 import types_pb2

from shoplib.commit.writes import Once


class Notifications(Protocol):
    async def get(self, order_id: str, kind: types_pb2.NotificationKind.ValueType
                  ) -> types_pb2.Notification | None: ...
    async def list(self, order_id: str) -> list[types_pb2.Notification]: ...
    def add(self, note: types_pb2.Notification) -> None:
        """Stage the send (it is kept in the order's list of notifications)."""
    def sent_once(self, note: types_pb2.Notification) -> Once:
        """The once key of a notification: one per (order, kind), ever."""


class UnitOfWork(Protocol):
    @property
    def notifications(self) -> Notifications: ...
    def emit(self, event: Message) -> None: ...
    async def commit(self, once: Once | None = None) -> bool: ...
    async def publish(self) -> None: ...
    async def finish(self) -> None: ...
