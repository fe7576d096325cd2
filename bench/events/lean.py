"""Durable lean consumers: the real consumers' commits (bench.common.durable) and nothing else.

Per entry, as the real consumer (counted with `redis-cli MONITOR` on a bench Redis, 3 orders):
payment, on OrderPlaced: one commit (SET payment NX, RPUSH ledger, XADD payment-events, XACK);
notification, on OrderPlaced and PaymentSucceeded: one commit (SET notification:<kind> NX, RPUSH,
XADD notification-events, XACK); order, on PaymentSucceeded: a GET of the order (its own round
trip, as the real handler reads it) then one commit (SET settled NX, SET order, PUBLISH, ZREM
pending-events, XACK). Reads: one XREADGROUP over every partition's stream for as many entries as
there are free slots (the real consumer's STREAM_BATCH, 64), sent while the commits of earlier
entries are still in flight. No decoding (the entry's subject names the order, its type the
event), no logging, metrics, deadlines, failure records or maintenance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from shop.v1 import types_pb2

from bench.common import durable
from bench.common.durable import Consumed, LeanStore
from order_svc.adapters import order_key
from shoplib import catalogue
from shoplib.store import partitions
from shoplib.store.connections import SOCKET_TIMEOUT_S
from shoplib.store.lean import RedisPipe
from shoplib.streams import topology
from shoplib.streams.reads import RawReply
from shoplib.streams.settings import ConsumerSettings

SETTINGS = ConsumerSettings()  # the real consumers' defaults: batch and block time
Work = Callable[[LeanStore, Consumed, str, bytes], Coroutine[Any, Any, None]]  # store, entry, order id, event type
KIND = {durable.PLACED: types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED,
        durable.PAID: types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT}


async def charge(store: LeanStore, entry: Consumed, order_id: str, kind: bytes) -> None:
    await store.commit(durable.charged(order_id, entry))


async def notify(store: LeanStore, entry: Consumed, order_id: str, kind: bytes) -> None:
    await store.commit(durable.notified(order_id, KIND[kind], entry))


async def settle(store: LeanStore, entry: Consumed, order_id: str, kind: bytes) -> None:
    await store.call(("GET", order_key(order_id)))
    await store.commit(durable.settled(order_id, types_pb2.FLOW_MODE_EVENTS, entry))


# role: (group, streams read, what an entry does), as the real services subscribe.
ROLES: dict[str, tuple[str, tuple[str, ...], Work]] = {
    "payment": (topology.PAYMENT_GROUP, (catalogue.ORDER_EVENTS,), charge),
    "notification": (topology.NOTIFICATION_GROUP, (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS), notify),
    "order": (topology.ORDER_GROUP, (catalogue.PAYMENT_EVENTS,), settle),
}


class LeanConsumer:
    def __init__(self, client: aioredis.Redis, store: LeanStore, role: str) -> None:
        self._client, self._store = client, store
        self._group, bases, self._work = ROLES[role]
        self._streams = [partitions.stream(base, p) for base in bases for p in partitions.every()]
        self._consumer = f"lean-{role}"
        pipe = RedisPipe.of(client, SETTINGS.block_ms / 1000 + SOCKET_TIMEOUT_S, drop_on_cancel=True)
        assert pipe is not None, "the durable twins run on one plain Redis"
        self._reads = pipe
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()

    async def start(self) -> asyncio.Task[None]:
        """Creates the groups (as the real services do at start), then consumes in a task."""
        await topology.ensure_groups(self._client, dict.fromkeys(self._streams, (self._group,)))
        return asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            while len(self._in_flight) >= SETTINGS.batch:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            for stream, entry_id, fields in await self._read(SETTINGS.batch - len(self._in_flight)):
                task = asyncio.get_running_loop().create_task(
                    self._work(self._store, Consumed(stream, self._group, entry_id), fields[0], fields[1]))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def _read(self, slots: int) -> Sequence[tuple[str, str, tuple[str, bytes]]]:
        """(stream, entry id, (order id, event type)) of up to `slots` new entries."""
        count = max(slots // len(self._streams), 1)  # COUNT is per stream, as the real reads share it
        [raw] = await self._reads.execute([("XREADGROUP", "GROUP", self._group, self._consumer, "COUNT", count,
                                            "BLOCK", SETTINGS.block_ms, "STREAMS", *self._streams,
                                            *[">"] * len(self._streams))])
        if isinstance(raw, Exception):
            raise raw
        return [(stream.decode(), entry_id.decode(), _subject_and_type(flat or []))
                for stream, entries in cast(RawReply, raw) or () for entry_id, flat in entries]


def _subject_and_type(flat: list[bytes]) -> tuple[str, bytes]:
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return fields[b"subject"].decode(), fields[b"type"]
