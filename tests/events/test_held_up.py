"""A delivery counts against an entry only when the entry is at fault (issue 19): deliveries spent
by reclaims, a handler cut off while the store held its commit, or while the loop lost time (a
starved host) are not the entry's; good events are handled, never dead-lettered for them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
import structlog
from shop.v1 import events_pb2, types_pb2

from order_svc import domain as order_domain
from payment_svc import consumers as payment_consumers
from payment_svc.adapters import payment_key
from shopctl.local_redis.server import LocalRedis
from shoplib.commit.committers import RedisCommitter
from shoplib.commit.writes import Ack, Committer, Once, Writes
from shoplib.streams import failures
from shoplib.streams.consumer import Subscription
from tests.events.helpers import (
    DEAD_STREAM,
    FAST,
    ORDER_STREAM,
    PAID_LINES,
    async_wait_until,
    consuming,
    new_id,
    publish,
    service_subscription,
)

pytestmark = pytest.mark.usefixtures("one_partition")  # streams written by hand: partition 0
CONSUMER = "payment-h"
LIMIT_S = FAST.handler_timeout_s
# How long the store holds the commit, or the loop stalls: well past the handler's limit.
HOLD_S = 3 * LIMIT_S


def _order() -> types_pb2.Order:
    return order_domain.new_order(new_id("key"), new_id("cust"), list(PAID_LINES), types_pb2.FLOW_MODE_EVENTS)


async def _charged(client: aioredis.Redis, order_id: str) -> bool:
    return bool(await client.exists(payment_key(order_id)))


def _logged(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == event]


async def test_an_entry_whose_deliveries_went_to_reclaims_is_handled_not_dead_lettered(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """Delivered past max_deliveries by reclaims alone (consumers held up, not failing): before
    issue 19 it went to the dead letters with "last error: none recorded"."""
    order = _order()
    await publish(RedisCommitter(async_redis), events_pb2.OrderPlaced(order=order))
    await async_redis.xgroup_create(ORDER_STREAM, payment_consumers.GROUP, id="0", mkstream=True)
    [[_, [(entry_id, _)]]] = await async_redis.xreadgroup(payment_consumers.GROUP, "ghost", {ORDER_STREAM: ">"})
    for _ in range(FAST.max_deliveries + 1):  # each claim is a delivery, as a reclaim is
        await async_redis.xclaim(ORDER_STREAM, payment_consumers.GROUP, "ghost", 0, [entry_id])
    async with consuming(local_redis.url, service_subscription("payment", CONSUMER), FAST):
        await async_wait_until(lambda: _charged(async_redis, order.order_id), what="the order charged")
    assert await async_redis.xrange(DEAD_STREAM) == []
    assert (await async_redis.xpending(ORDER_STREAM, payment_consumers.GROUP))["pending"] == 0


class HeldCommits:
    """The real committer, except that the first `times` commits for one order first wait `hold_s`
    on Redis itself (a BLPOP that times out: a round trip as slow as a failing-over master's)."""

    def __init__(self, client: aioredis.Redis, inner: Committer, order_id: str, hold_s: float = HOLD_S,
                 times: int = 1) -> None:
        self._client, self._inner, self._order_id = client, inner, order_id
        self._hold_s, self._times, self.held = hold_s, times, 0

    async def commit(self, writes: Writes, once: Once | None = None, ack: Ack | None = None) -> bool:
        if once is not None and self._order_id in once[0] and self.held < self._times:
            self.held += 1
            await self._client.blpop([new_id("never-pushed")], timeout=self._hold_s)
        return await self._inner.commit(writes, once, ack)


async def test_a_handler_cut_off_while_the_store_holds_its_commit_is_held_up_not_counted(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    order = _order()
    held: list[HeldCommits] = []

    def payments(client: aioredis.Redis, committer: Committer) -> Subscription:
        held.append(HeldCommits(client, committer, order.order_id))
        return service_subscription("payment", CONSUMER)(client, held[-1])

    with structlog.testing.capture_logs() as logs:
        async with consuming(local_redis.url, payments, FAST):
            await publish(RedisCommitter(async_redis), events_pb2.OrderPlaced(order=order))
            await async_wait_until(lambda: _charged(async_redis, order.order_id), what="the order charged")
    assert held[0].held == 1
    assert not _logged(logs, "event.failed"), _logged(logs, "event.failed")
    assert _logged(logs, "event.held_up"), "the cut-off was not seen as held up"


async def test_a_store_slower_than_the_limit_every_time_still_gets_the_entry_done_on_a_longer_limit(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """Every commit of the order held 1.5x the handler's limit (a loaded host's store): the tries
    after the first hold-up run with the claim idle time (3x) as their limit, and one succeeds."""
    order = _order()
    held: list[HeldCommits] = []

    def payments(client: aioredis.Redis, committer: Committer) -> Subscription:
        held.append(HeldCommits(client, committer, order.order_id, hold_s=1.5 * LIMIT_S, times=100))
        return service_subscription("payment", CONSUMER)(client, held[-1])

    with structlog.testing.capture_logs() as logs:
        async with consuming(local_redis.url, payments, FAST):
            await publish(RedisCommitter(async_redis), events_pb2.OrderPlaced(order=order))
            await async_wait_until(lambda: _charged(async_redis, order.order_id), what="the order charged")
    assert not _logged(logs, "event.failed"), _logged(logs, "event.failed")
    assert _logged(logs, "event.held_up")  # at its own limit it is held up every time: never done


async def test_a_handler_cut_off_after_the_loop_lost_its_time_is_held_up_not_counted(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """The loop blocked for HOLD_S by another callback, as a host that gives the process no CPU
    would; the handler itself waits on nothing but a short sleep meanwhile."""
    order = _order()
    stalls = []

    def payments(client: aioredis.Redis, committer: Committer) -> Subscription:
        real = service_subscription("payment", CONSUMER)(client, committer)
        charge = real.handlers[events_pb2.OrderPlaced]

        async def handler(envelope: events_pb2.EventEnvelope, event: Any, ack: Ack) -> None:
            if envelope.subject == order.order_id and not stalls:
                stalls.append(asyncio.get_running_loop().call_soon(time.sleep, HOLD_S))
                await asyncio.sleep(LIMIT_S / 2)
            await charge(envelope, event, ack)

        return Subscription(real.group, real.consumer, {events_pb2.OrderPlaced: handler}, real.streams)

    with structlog.testing.capture_logs() as logs:
        async with consuming(local_redis.url, payments, FAST):
            await publish(RedisCommitter(async_redis), events_pb2.OrderPlaced(order=order))
            await async_wait_until(lambda: _charged(async_redis, order.order_id), what="the order charged")
    assert len(stalls) == 1
    assert not _logged(logs, "event.failed"), _logged(logs, "event.failed")
    held = _logged(logs, "event.held_up")
    assert held and "loop lost" in held[0]["reason"], held


async def test_an_entry_its_consumers_keep_crashing_on_is_still_dead_lettered_saying_so(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """Over budget, with every attempt since ended without an outcome (each consumer holding it
    died): at fault, and the dead letter says what happened, not "none recorded"."""
    order = _order()
    await publish(RedisCommitter(async_redis), events_pb2.OrderPlaced(order=order))
    await async_redis.xgroup_create(ORDER_STREAM, payment_consumers.GROUP, id="0", mkstream=True)
    [[_, [(entry_id, _)]]] = await async_redis.xreadgroup(payment_consumers.GROUP, "ghost", {ORDER_STREAM: ">"})
    for _ in range(FAST.max_deliveries + 1):
        await async_redis.xclaim(ORDER_STREAM, payment_consumers.GROUP, "ghost", 0, [entry_id])
    ack = Ack(ORDER_STREAM, payment_consumers.GROUP, entry_id.decode())
    for _ in range(FAST.max_deliveries):  # as the attempts of consumers that crashed would leave it
        await failures.attempt(async_redis, ack, await failures.read(async_redis, ack))
    async with consuming(local_redis.url, service_subscription("payment", CONSUMER), FAST):
        [(_, letter)] = await async_wait_until(lambda: async_redis.xrange(DEAD_STREAM), what="the dead letter")
    error = letter[b"error"].decode()
    assert "none recorded" not in error
    assert f"{FAST.max_deliveries} ended without an outcome (its consumer stopped or crashed holding it)" in error
    assert not await _charged(async_redis, order.order_id)
