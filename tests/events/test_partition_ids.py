"""Entry ids repeat across streams, and with partitions often (two partitions' streams get an entry
in the same millisecond): what one entry did never counts against another of the same id."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from shop.v1 import events_pb2, types_pb2

from shoplib import catalogue
from shoplib.commit.committers import RedisCommitter
from shoplib.commit.writes import Ack, Writes
from shoplib.store import outage, partitions
from shoplib.streams import topology
from shoplib.streams.entries import EntryWorker
from shoplib.streams.settings import DEAD_LETTERS, ConsumerSettings
from shoplib.streams.subscription import Subscription

SAME_ID = "5-0"
BUDGET = ConsumerSettings(block_ms=100, claim_idle_ms=3_000, max_deliveries=2)


def _placed(order_id: str) -> dict[bytes, bytes]:
    envelope = catalogue.wrap(events_pb2.OrderPlaced(order=types_pb2.Order(order_id=order_id)), "/test")
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in catalogue.entry_fields(envelope).items()}


async def test_failures_of_an_entry_do_not_spend_the_budget_of_its_namesake_in_another_partition(
        async_redis: aioredis.Redis) -> None:
    doomed, fine = partitions.stream(catalogue.ORDER_EVENTS, 0), partitions.stream(catalogue.ORDER_EVENTS, 1)
    for stream, order_id in ((doomed, "ord_p0_doomed"), (fine, "ord_p1_fine")):
        await async_redis.xgroup_create(stream, topology.PAYMENT_GROUP, id="0", mkstream=True)
        await async_redis.xadd(stream, {k.decode(): v for k, v in _placed(order_id).items()}, id=SAME_ID)
    await async_redis.xreadgroup(topology.PAYMENT_GROUP, "c", {doomed: ">", fine: ">"})
    committer, handled = RedisCommitter(async_redis), []

    async def charge(envelope: events_pb2.EventEnvelope, placed: events_pb2.OrderPlaced, ack: Ack) -> None:
        if ack.stream == doomed:
            raise RuntimeError("a bug on this entry only")
        handled.append(placed.order.order_id)
        await committer.commit(Writes(), None, ack)

    sub = Subscription(topology.PAYMENT_GROUP, "c", {events_pb2.OrderPlaced: charge}, [catalogue.ORDER_EVENTS])
    worker = EntryWorker(async_redis, committer, sub, BUDGET,
                         outage.StoreGate(outage.write_probe(async_redis, "health:t")), asyncio.Event())
    for delivery in range(1, BUDGET.max_deliveries + 1):
        await worker.work((doomed, SAME_ID, _placed("ord_p0_doomed")), delivery)
    await worker.work((fine, SAME_ID, _placed("ord_p1_fine")), 1)

    assert handled == ["ord_p1_fine"]
    assert await async_redis.xlen(partitions.stream(DEAD_LETTERS, 1)) == 0
