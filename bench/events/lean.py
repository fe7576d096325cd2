"""Durable lean consumers: the real consumers' commits (bench.common.durable) and nothing else.

Per entry, as the real consumer (counted with `redis-cli MONITOR` on a bench Redis, 3 orders):
payment, on OrderPlaced: one commit (SET payment NX, RPUSH ledger, XADD payment-events, XACK);
notification, on OrderPlaced and PaymentSucceeded: one commit (SET notification:<kind> NX, RPUSH,
XADD notification-events, XACK); order, on PaymentSucceeded: a GET of the order (its own round
trip, as the real handler reads it) then one commit (SET settled NX, SET order, PUBLISH, ZREM
pending-events, XACK). Reads: one XREADGROUP over every partition's stream for as many entries as
there are free slots (the real consumer's STREAM_BATCH, 64), sent while the commits of earlier
entries are still in flight; on a Redis Cluster one such read per partition, all at once, as the
real consumer (a read may not span slots; bench.common.cluster_store says over what). No
decoding (the entry's subject names the order, its type the event), no logging, metrics,
deadlines, failure records or maintenance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from shop.v1 import types_pb2

from bench.common import durable
from bench.common.cluster_store import Transport, node_pipe
from bench.common.durable import Consumed, LeanStore
from order_svc.adapters import order_key
from shoplib import catalogue
from shoplib.store import connections, partitions
from shoplib.store.connections import SOCKET_TIMEOUT_S
from shoplib.store.lean import RedisPipe
from shoplib.streams import topology
from shoplib.streams.consumer import read_groups
from shoplib.streams.reads import ParsedReply, RawReply, text
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


class Read:
    """One XREADGROUP's streams: on a lean connection (`pipe`), or through redis-py's client."""

    def __init__(self, client: aioredis.Redis, streams: Sequence[str], pipe: RedisPipe | None) -> None:
        self.streams, self._client, self._pipe = list(streams), client, pipe

    async def new(self, group: str, consumer: str, count: int) -> list[tuple[str, str, tuple[str, bytes]]]:
        """(stream, entry id, (order id, event type)) of up to `count` new entries per stream."""
        if self._pipe is None:
            parsed = await self._client.xreadgroup(group, consumer, dict.fromkeys(self.streams, ">"), count=count,
                                                   block=SETTINGS.block_ms)
            return [(text(stream), text(entry_id), (text((fields or {})[b"subject"]), (fields or {})[b"type"]))
                    for stream, entries in cast(ParsedReply, parsed) or () for entry_id, fields in entries]
        [raw] = await self._pipe.execute([("XREADGROUP", "GROUP", group, consumer, "COUNT", count, "BLOCK",
                                           SETTINGS.block_ms, "STREAMS", *self.streams, *[">"] * len(self.streams))])
        if isinstance(raw, Exception):
            raise raw
        return [(stream.decode(), entry_id.decode(), _subject_and_type(flat or []))
                for stream, entries in cast(RawReply, raw) or () for entry_id, flat in entries]

    async def aclose(self) -> None:
        if self._pipe is not None:
            await self._pipe.close()


async def reads(client: aioredis.Redis, streams: Sequence[str], transport: Transport) -> list[Read]:
    """On one Redis one read of every partition on a lean connection; on a cluster one read per
    partition (a read may not span slots), over `transport` (bench.common.cluster_store)."""
    timeout_s = SETTINGS.block_ms / 1000 + SOCKET_TIMEOUT_S
    if not connections.is_cluster(client):
        every = [partitions.stream(base, p) for base in streams for p in partitions.every()]
        return [Read(client, every, RedisPipe.of(client, timeout_s, drop_on_cancel=True))]
    cluster = cast(RedisCluster, client)
    await cluster.initialize()  # the slot map: which master each partition's read goes to
    return [Read(client, group, node_pipe(cluster, group[0], timeout_s, drop_on_cancel=True)
                 if transport == "lean" else None) for group in read_groups(streams, clustered=True)]


class LeanConsumer:
    """`instance`: the consumer's number among those of its role (its name in the group)."""

    def __init__(self, client: aioredis.Redis, store: LeanStore, role: str, instance: int = 1,
                 transport: Transport = "lean") -> None:
        self._client, self._store = client, store
        self._group, self._bases, self._work = ROLES[role]
        self._transport = transport
        self._reads: list[Read] = []
        self._consumer = f"lean-{role}" + (f"-{instance}" if instance > 1 else "")
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()

    async def start(self) -> asyncio.Task[None]:
        """Creates the groups (as the real services do at start), then consumes in a task."""
        self._reads = await reads(self._client, self._bases, self._transport)
        streams = [stream for read in self._reads for stream in read.streams]
        await topology.ensure_groups(self._client, dict.fromkeys(streams, (self._group,)))
        return asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await asyncio.gather(*(self._read_new(read) for read in self._reads))
        finally:  # stopped: what was read and not done is left pending, as a stopped service leaves it
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            for read in self._reads:
                await read.aclose()

    async def _read_new(self, read: Read) -> None:
        while True:
            while len(self._in_flight) >= SETTINGS.batch:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            # COUNT is per stream, and the free slots are shared among the reads, as the real reads share them
            count = max((SETTINGS.batch - len(self._in_flight)) // len(self._reads) // len(read.streams), 1)
            for stream, entry_id, (order_id, kind) in await read.new(self._group, self._consumer, count):
                task = asyncio.get_running_loop().create_task(
                    self._work(self._store, Consumed(stream, self._group, entry_id), order_id, kind))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()


def _subject_and_type(flat: Sequence[bytes]) -> tuple[str, bytes]:
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return fields[b"subject"].decode(), fields[b"type"]
