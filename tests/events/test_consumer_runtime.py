"""The consumer runtime's promises that the other modules do not already cover: own pending
entries first after a restart, entries deleted while pending, handlers past their time limit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from shop.v1 import events_pb2, types_pb2

from order_svc import domain as order_domain
from payment_svc import consumers as payment_consumers
from payment_svc.adapters import payment_key
from shopctl.local_redis.server import LocalRedis
from shoplib.commit.committers import RedisCommitter
from shoplib.commit.writes import Ack, Committer
from shoplib.streams.consumer import Subscription
from shoplib.streams.settings import ConsumerSettings
from tests.events.helpers import (
    DEAD_STREAM,
    FAST,
    ORDER_STREAM,
    PAID_LINES,
    alive,
    async_wait_until,
    consuming,
    new_id,
    publish,
    s,
    service_subscription,
    task_error,
)

GROUP = payment_consumers.GROUP
CONSUMER = "payment-r"
# Entries pending at the restart, and entries appended meanwhile (several of each, so that an
# interleaving would show).
ENTRIES_EACH = 3
# Reclaim is an hour away here: whatever gets processed was not reclaimed.
NO_RECLAIM = ConsumerSettings(block_ms=100, claim_idle_ms=3_600_000, maintenance_interval_s=0.2, max_deliveries=3)

pytestmark = pytest.mark.usefixtures("one_partition")  # streams written by hand: partition 0



def _order() -> types_pb2.Order:
    return order_domain.new_order(new_id("key"), new_id("cust"), list(PAID_LINES), types_pb2.FLOW_MODE_EVENTS)


class Payments:
    """The real payment subscription; orders in `slow` take `slow_s` in their handler. `steps`
    records, in order, each handler call's ("start", order id) and ("end", order id)."""

    def __init__(self, slow: set[str] = frozenset(), slow_s: float = 0.0) -> None:  # type: ignore[assignment]
        self.slow, self.slow_s, self.attempts = slow, slow_s, 0
        self.steps: list[tuple[str, str]] = []

    def __call__(self, client: aioredis.Redis, committer: Committer) -> Subscription:
        real = service_subscription("payment", CONSUMER)(client, committer)
        charge = real.handlers[events_pb2.OrderPlaced]

        async def handler(envelope: events_pb2.EventEnvelope, event: Any, ack: Ack) -> None:
            self.steps.append(("start", envelope.subject))
            if envelope.subject in self.slow:
                self.attempts += 1
                await asyncio.sleep(self.slow_s)
            await charge(envelope, event, ack)
            self.steps.append(("end", envelope.subject))

        return Subscription(real.group, real.consumer, {events_pb2.OrderPlaced: handler}, real.streams)


async def _charged(client: aioredis.Redis, order_id: str) -> bool:
    return bool(await client.exists(payment_key(order_id)))


async def test_a_restarted_consumer_processes_its_own_pending_entries_first(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """Entries handed to a consumer before it crashed are processed at its restart, without
    waiting for the claim idle time, and every one of them is done before any entry that was
    appended meanwhile is started."""
    pending, new = [_order() for _ in range(ENTRIES_EACH)], [_order() for _ in range(ENTRIES_EACH)]
    await async_redis.xgroup_create(ORDER_STREAM, GROUP, id="0", mkstream=True)
    committer = RedisCommitter(async_redis)
    await publish(committer, *(events_pb2.OrderPlaced(order=o) for o in pending))
    await async_redis.xreadgroup(GROUP, CONSUMER, {ORDER_STREAM: ">"})  # delivered, then "crashed"
    await publish(committer, *(events_pb2.OrderPlaced(order=o) for o in new))  # waiting, never delivered
    payments = Payments()

    async with consuming(local_redis.url, payments, NO_RECLAIM):
        for order in [*pending, *new]:
            await async_wait_until(lambda o=order: _charged(async_redis, o.order_id), what=f"{order.order_id} charged")
        await async_wait_until(lambda: _no_pending(async_redis), what="every entry acknowledged")

    was_pending = {o.order_id for o in pending}
    first_new_started = next(i for i, (step, order_id) in enumerate(payments.steps)
                             if step == "start" and order_id not in was_pending)
    done_before = {order_id for step, order_id in payments.steps[:first_new_started] if step == "end"}
    assert done_before == was_pending, f"a new entry started before the pending ones were done: {payments.steps}"


async def _no_pending(client: aioredis.Redis) -> bool:
    return (await client.xpending(ORDER_STREAM, GROUP))["pending"] == 0


async def test_an_entry_deleted_while_pending_is_acknowledged_not_dead_lettered(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    order = _order()
    await async_redis.xgroup_create(ORDER_STREAM, GROUP, id="0", mkstream=True)
    await publish(RedisCommitter(async_redis), events_pb2.OrderPlaced(order=order))
    [[_, [(entry_id, _)]]] = await async_redis.xreadgroup(GROUP, CONSUMER, {ORDER_STREAM: ">"})
    await async_redis.xdel(ORDER_STREAM, entry_id)

    async with consuming(local_redis.url, Payments(), NO_RECLAIM) as consumer:
        await async_wait_until(lambda: _no_pending(async_redis), what="the deleted entry acknowledged")
        assert alive(consumer), task_error(consumer)
    assert await async_redis.xlen(DEAD_STREAM) == 0


async def test_a_handler_past_its_time_limit_is_retried_then_dead_lettered_with_the_timeout_as_reason(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """A slow handler is an event failure (retried after reclaim, dead-lettered past the limit,
    with its reason); Redis is fine, and other entries go on being processed meanwhile."""
    slow, fine = _order(), _order()
    payments = Payments(slow={slow.order_id}, slow_s=FAST.handler_timeout_s * 3)
    committer = RedisCommitter(async_redis)
    await publish(committer, events_pb2.OrderPlaced(order=slow))

    async with consuming(local_redis.url, payments, FAST) as consumer:
        await async_wait_until(lambda: payments.attempts >= 1, what="the slow order attempted")
        await publish(committer, events_pb2.OrderPlaced(order=fine))
        await async_wait_until(lambda: _charged(async_redis, fine.order_id), what="the other order charged")
        letters = await async_wait_until(lambda: async_redis.xrange(DEAD_STREAM), what="the slow order dead-lettered")
        assert alive(consumer), task_error(consumer)

    [(_, letter)] = letters
    assert s(letter[b"entry_id"]) == s((await async_redis.xrange(ORDER_STREAM))[0][0])
    assert int(letter[b"deliveries"]) == FAST.max_deliveries + 1
    assert payments.attempts == FAST.max_deliveries
    assert "TimeoutError" in s(letter[b"error"]), f"dead letter does not say why: {s(letter[b'error'])!r}"
    assert not await _charged(async_redis, slow.order_id)
