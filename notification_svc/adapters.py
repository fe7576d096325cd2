"""Notification adapters: the Redis notification store ("sending" = recording it)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from shop.v1 import types_pb2

from shoplib.redis_conn import as_bytes
from shoplib.tx import Ack, Committer
from shoplib.uow import Publisher, UnitOfWork


class Reader(Protocol):
    """What the notifications read, as redis.asyncio.Redis declares it."""

    def get(self, name: str, /) -> Awaitable[bytes | str | None]: ...
    def lrange(self, name: str, start: int, end: int, /) -> Awaitable[list[bytes | str]]: ...


class Notifications:
    """Keys: notification:{order}:{kind} -> bytes (once, NX); notification:{order} -> list, oldest first."""

    def __init__(self, reader: Reader, uow: UnitOfWork) -> None:
        self._reader, self._uow = reader, uow

    async def get(self, order_id: str, kind: types_pb2.NotificationKind.ValueType) -> types_pb2.Notification | None:
        raw = await self._reader.get(f"notification:{order_id}:{kind}")
        return None if raw is None else types_pb2.Notification.FromString(as_bytes(raw))

    async def list(self, order_id: str) -> list[types_pb2.Notification]:
        return [types_pb2.Notification.FromString(as_bytes(raw))
                for raw in await self._reader.lrange(f"notification:{order_id}", 0, -1)]

    def record(self, note: types_pb2.Notification) -> tuple[str, bytes]:
        """Stage the send; returns the once key that makes it happen once per (order, kind)."""
        data = note.SerializeToString()
        self._uow.writes.rpush(f"notification:{note.order_id}", data)
        return f"notification:{note.order_id}:{note.kind}", data


class NotificationUnitOfWork(UnitOfWork):
    def __init__(self, reader: Reader, committer: Committer, publisher: Publisher,
                 ack: Ack | None = None) -> None:
        super().__init__(committer, publisher, ack)
        self.notifications = Notifications(reader, self)
