"""Notification adapters: the Redis notification store ("sending" = recording it)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

from shop.v1 import types_pb2

from shoplib.commit.unit_of_work import BaseUnitOfWork, Publisher
from shoplib.commit.writes import Ack, Committer, Once, Writes
from shoplib.store import partitions
from shoplib.store.connections import as_bytes


class Reader(Protocol):
    """What the notifications read, as redis.asyncio.Redis declares it (a read-only Sequence where
    redis says list, so the in-memory twin's list[bytes] fits too)."""

    def get(self, name: str, /) -> Awaitable[bytes | str | None]: ...
    def lrange(self, name: str, start: int, end: int, /) -> Awaitable[Sequence[bytes | str]]: ...


def notes_key(order_id: str, *kind: str) -> str:
    """notification:{p}:<order id> (the list), or with a kind notification:{p}:<order id>:<kind>."""
    return partitions.key("notification", partitions.partition_of_order(order_id), order_id, *kind)


class NotificationStore:
    """Keys (in the order's partition p): notification:{p}:<order>:<kind> -> bytes (once, NX);
    notification:{p}:<order> -> list, oldest first. Stages its writes into the unit's `writes`."""

    def __init__(self, reader: Reader, writes: Writes) -> None:
        self._reader, self._writes = reader, writes

    async def get(self, order_id: str, kind: types_pb2.NotificationKind.ValueType) -> types_pb2.Notification | None:
        raw = await self._reader.get(notes_key(order_id, str(kind)))
        return None if raw is None else types_pb2.Notification.FromString(as_bytes(raw))

    async def list(self, order_id: str) -> list[types_pb2.Notification]:
        return [types_pb2.Notification.FromString(as_bytes(raw))
                for raw in await self._reader.lrange(notes_key(order_id), 0, -1)]

    def add(self, note: types_pb2.Notification) -> None:
        self._writes.rpush(notes_key(note.order_id), note.SerializeToString())

    def sent_once(self, note: types_pb2.Notification) -> Once:
        return notes_key(note.order_id, str(note.kind)), note.SerializeToString()


class NotificationUnitOfWork(BaseUnitOfWork[None]):
    def __init__(self, reader: Reader, committer: Committer, publisher: Publisher[None],
                 ack: Ack | None = None) -> None:
        super().__init__(committer, publisher, ack)
        self.notifications = NotificationStore(reader, self.writes)
