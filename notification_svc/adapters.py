"""Notification adapters: the Redis notification store ("sending" = recording it)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

from shop.v1 import types_pb2

from shoplib.redis_conn import as_bytes
from shoplib.tx import Ack, Committer, Once, Writes
from shoplib.uow import Publisher, UnitOfWork


class Reader(Protocol):
    """What the notifications read, as redis.asyncio.Redis declares it (a read-only Sequence where
    redis says list, so the in-memory twin's list[bytes] fits too)."""

    def get(self, name: str, /) -> Awaitable[bytes | str | None]: ...
    def lrange(self, name: str, start: int, end: int, /) -> Awaitable[Sequence[bytes | str]]: ...


class NotificationStore:
    """Keys: notification:{order}:{kind} -> bytes (once, NX); notification:{order} -> list, oldest
    first. Stages its writes into the unit's `writes`."""

    def __init__(self, reader: Reader, writes: Writes) -> None:
        self._reader, self._writes = reader, writes

    async def get(self, order_id: str, kind: types_pb2.NotificationKind.ValueType) -> types_pb2.Notification | None:
        raw = await self._reader.get(f"notification:{order_id}:{kind}")
        return None if raw is None else types_pb2.Notification.FromString(as_bytes(raw))

    async def list(self, order_id: str) -> list[types_pb2.Notification]:
        return [types_pb2.Notification.FromString(as_bytes(raw))
                for raw in await self._reader.lrange(f"notification:{order_id}", 0, -1)]

    def add(self, note: types_pb2.Notification) -> None:
        self._writes.rpush(f"notification:{note.order_id}", note.SerializeToString())

    def sent_once(self, note: types_pb2.Notification) -> Once:
        return f"notification:{note.order_id}:{note.kind}", note.SerializeToString()


class NotificationUnitOfWork(UnitOfWork[None]):
    def __init__(self, reader: Reader, committer: Committer, publisher: Publisher[None],
                 ack: Ack | None = None) -> None:
        super().__init__(committer, publisher, ack)
        self.notifications = NotificationStore(reader, self.writes)
