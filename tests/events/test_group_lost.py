"""A consumer group deleted under a running consumer (Redis restarted without persistence, an
operator's mistake) is recreated and reported; the consumer goes on and orders are still charged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from shop.v1 import events_pb2, types_pb2

from order_svc import domain as order_domain
from payment_svc import consumers as payment_consumers
from payment_svc.adapters import payment_key
from shopctl.local_redis.server import LocalRedis
from shopctl.stack import Stack
from shoplib.commit.committers import RedisCommitter
from shoplib.commit.writes import Ack, Committer
from shoplib.streams.consumer import Subscription
from shoplib.streams.settings import ConsumerSettings
from tests.events.conftest import StackFactory
from tests.events.helpers import (
    LEDGER,
    ORDER_STREAM,
    PAID_LINES,
    Clients,
    alive,
    async_wait_until,
    consuming,
    ledger_count,
    log_events,
    new_id,
    publish,
    s,
    service_subscription,
    task_error,
    wait_until,
)

GROUP = payment_consumers.GROUP
# A handler may hold its entry for a second here (claim_idle_ms / 3), and maintenance is due
# every 0.1 s: the gated handler below outlives one maintenance period, not its time limit.
PATIENT = ConsumerSettings(block_ms=100, claim_idle_ms=3_000, maintenance_interval_s=0.1, max_deliveries=3)

pytestmark = pytest.mark.usefixtures("one_partition")  # streams written by hand: partition 0



def _order() -> types_pb2.Order:
    return order_domain.new_order(new_id("key"), new_id("cust"), list(PAID_LINES), types_pb2.FLOW_MODE_EVENTS)


def _groups(client: redis.Redis, stream: str) -> set[str]:
    return {s(g["name"]) for g in client.xinfo_groups(stream)}


@pytest.mark.e2e
def test_group_destroyed_under_an_idle_consumer_is_recreated(
        local_redis: LocalRedis, sync_redis: redis.Redis, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients]) -> None:
    with stack_on(local_redis.url) as stack:
        clients = clients_of(stack)
        before = clients.place(types_pb2.FLOW_MODE_EVENTS)
        clients.follow(before.order_id)

        assert sync_redis.xgroup_destroy(ORDER_STREAM, GROUP) == 1
        wait_until(lambda: GROUP in _groups(sync_redis, ORDER_STREAM), what="the group to be recreated")
        after = [clients.place(types_pb2.FLOW_MODE_EVENTS) for _ in range(3)]

        for order in after:
            assert clients.follow(order.order_id)[-1].status == types_pb2.ORDER_STATUS_PAID
        for order in [before, *after]:  # the recreated group re-read the stream: charges stayed single
            assert ledger_count(sync_redis, order.order_id) == 1
        lost = [e for e in log_events(stack.log_dir / "payment.log") if e.get("event") == "consumer.group_lost"]
        assert lost and lost[0]["level"] == "error"


async def _group_exists(client: aioredis.Redis) -> bool:
    return GROUP in {s(g["name"]) for g in await client.xinfo_groups(ORDER_STREAM)}


class GatedPayments:
    """The real payment subscription; the first order's handler waits for a gate to open."""

    def __init__(self) -> None:
        self.entered, self.gate = asyncio.Event(), asyncio.Event()

    def __call__(self, client: aioredis.Redis, committer: Committer) -> Subscription:
        real = service_subscription("payment", "payment-gated")(client, committer)
        charge = real.handlers[events_pb2.OrderPlaced]

        async def handler(envelope: events_pb2.EventEnvelope, event: Any, ack: Ack) -> None:
            if not self.gate.is_set():
                self.entered.set()
                await self.gate.wait()
            await charge(envelope, event, ack)

        return Subscription(real.group, real.consumer, {events_pb2.OrderPlaced: handler}, real.streams)


async def test_group_destroyed_while_a_handler_runs_is_recreated(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """The loss is met while the handler still holds its entry (by the next read or the
    maintenance, whichever comes first) and the group is recreated at once; the held order and
    the orders after it are each charged once."""
    committer = RedisCommitter(async_redis)
    payments = GatedPayments()
    busy, later = _order(), _order()

    async with consuming(local_redis.url, payments, PATIENT) as consumer:
        await publish(committer, events_pb2.OrderPlaced(order=busy))
        await asyncio.wait_for(payments.entered.wait(), 5)
        assert await async_redis.xgroup_destroy(ORDER_STREAM, GROUP) == 1
        await async_wait_until(lambda: _group_exists(async_redis), what="the group recreated while the handler waits")
        payments.gate.set()

        await publish(committer, events_pb2.OrderPlaced(order=later))
        async def charged_or_stopped() -> bool:
            return not alive(consumer) or bool(await async_redis.exists(payment_key(later.order_id)))

        await async_wait_until(charged_or_stopped, what="the later order charged")
        assert alive(consumer), f"the consumer stopped: {task_error(consumer)}"

    assert {s(x) for x in await async_redis.lrange(LEDGER, 0, -1)} == {busy.order_id, later.order_id}
    assert await async_redis.llen(LEDGER) == 2
