"""Poison entries: what cannot be decoded, and what fails on every delivery, ends in the
dead letters with everything needed to look at it and re-drive it; the consumer goes on."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from shop.v1 import events_pb2, types_pb2

from order_svc import domain as order_domain
from payment_svc import consumers as payment_consumers
from payment_svc.adapters import payment_key
from shopctl.local_redis.server import LocalRedis
from shoplib import catalogue
from shoplib.commit.committers import RedisCommitter
from shoplib.commit.writes import Ack, Committer
from shoplib.streams import deadletter, status
from shoplib.streams.consumer import Subscription
from tests.events.helpers import (
    DEAD_STREAM,
    FAST,
    LEDGER,
    ORDER_STREAM,
    PAID_LINES,
    alive,
    async_wait_until,
    consuming,
    new_id,
    publish,
    s,
    service_subscription,
)

DEAD_LETTER_FIELDS = {"stream", "entry_id", "group", "consumer", "deliveries", "error", "original"}
CONSUMER = "payment-t"

pytestmark = pytest.mark.usefixtures("one_partition")  # streams written by hand: partition 0



def _order() -> types_pb2.Order:
    return order_domain.new_order(new_id("key"), new_id("cust"), list(PAID_LINES), types_pb2.FLOW_MODE_EVENTS)


class FlakyPayments:
    """The real payment subscription, except that one order's handler raises until fixed."""

    def __init__(self, poison_order_id: str) -> None:
        self.poison, self.fixed, self.attempts = poison_order_id, False, 0

    def __call__(self, client: aioredis.Redis, committer: Committer) -> Subscription:
        real = service_subscription("payment", CONSUMER)(client, committer)
        charge = real.handlers[events_pb2.OrderPlaced]

        async def handler(envelope: events_pb2.EventEnvelope, event: Any, ack: Ack) -> None:
            if envelope.subject == self.poison and not self.fixed:
                self.attempts += 1
                raise RuntimeError("the card processor refuses this order")
            await charge(envelope, event, ack)

        return Subscription(real.group, real.consumer, {events_pb2.OrderPlaced: handler}, real.streams)


async def _dead_letters(client: aioredis.Redis) -> dict[str, tuple[str, dict[str, bytes]]]:
    """Dead letters by the id of the entry they came from: (dead letter id, fields)."""
    return {s(f[b"entry_id"]): (s(i), {s(k): v for k, v in f.items()}) for i, f in await client.xrange(DEAD_STREAM)}


async def _charged(client: aioredis.Redis, order_id: str) -> bool:
    return bool(await client.exists(payment_key(order_id)))


async def test_poison_entries_are_dead_lettered_and_entries_behind_them_are_processed(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    poison, ahead, behind = _order(), _order(), _order()
    committer = RedisCommitter(async_redis)
    garbage_id = s(await async_redis.xadd(ORDER_STREAM, {"id": "e-1", "type": "?", "envelope": b"\x00garbage"}))
    bare_id = s(await async_redis.xadd(ORDER_STREAM, {"note": "no envelope here"}))
    await publish(committer, events_pb2.OrderPlaced(order=poison), events_pb2.OrderPlaced(order=ahead))
    poison_id = s((await async_redis.xrange(ORDER_STREAM))[2][0])
    payments = FlakyPayments(poison.order_id)

    async with consuming(local_redis.url, payments) as consumer:
        await async_wait_until(lambda: payments.attempts >= 1, what="the first failing attempt")
        await publish(committer, events_pb2.OrderPlaced(order=behind))
        for order in (ahead, behind):
            await async_wait_until(lambda o=order: _charged(async_redis, o.order_id), what="good orders charged")
        dead = await async_wait_until(lambda: _dead_and_all(async_redis, 3), what="three dead letters")
        assert alive(consumer), "a poison entry stopped the consumer"

    assert set(dead) == {garbage_id, bare_id, poison_id}
    for entry_id, (_, fields) in dead.items():
        assert DEAD_LETTER_FIELDS <= set(fields)
        assert (s(fields["stream"]), s(fields["entry_id"]), s(fields["group"]), s(fields["consumer"])) == (
            ORDER_STREAM, entry_id, payment_consumers.GROUP, CONSUMER)
    assert s(dead[garbage_id][1]["error"]).startswith("undecodable")
    assert dead[garbage_id][1]["original"] == b"\x00garbage"
    assert s(dead[bare_id][1]["error"]).startswith("undecodable")
    assert dead[bare_id][1]["original"] == b"note=no envelope here"
    assert int(dead[garbage_id][1]["deliveries"]) == int(dead[bare_id][1]["deliveries"]) == 1  # never retried

    poison_letter = dead[poison_id][1]
    assert payments.attempts == FAST.max_deliveries, "handled more or less often than max_deliveries"
    assert int(poison_letter["deliveries"]) == FAST.max_deliveries + 1
    assert "RuntimeError: the card processor refuses this order" in s(poison_letter["error"])
    [(_, original)] = await async_redis.xrange(ORDER_STREAM, poison_id, poison_id)
    assert poison_letter["original"] == original[b"envelope"]
    assert not await _charged(async_redis, poison.order_id)
    assert await async_redis.xpending(ORDER_STREAM, payment_consumers.GROUP) == {
        "pending": 0, "min": None, "max": None, "consumers": []}


async def _dead_and_all(client: aioredis.Redis, count: int) -> dict[str, tuple[str, dict[str, bytes]]] | None:
    found = await _dead_letters(client)
    return found if len(found) >= count else None


async def test_a_dead_letter_is_redriven_once_the_cause_is_fixed(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    poison = _order()
    committer = RedisCommitter(async_redis)
    bare_id = s(await async_redis.xadd(ORDER_STREAM, {"note": "no envelope here"}))
    await publish(committer, events_pb2.OrderPlaced(order=poison))
    payments = FlakyPayments(poison.order_id)

    async with consuming(local_redis.url, payments):
        dead = await async_wait_until(lambda: _dead_and_all(async_redis, 2), what="two dead letters")
        [poison_letter_id] = [letter_id for entry_id, (letter_id, _) in dead.items() if entry_id != bare_id]
        bare_letter_id = dead[bare_id][0]
        with pytest.raises(ValueError):
            await deadletter.redrive(async_redis, bare_letter_id)  # not one of our events: nothing to re-drive
        with pytest.raises(KeyError):
            await deadletter.redrive(async_redis, "1-1")

        payments.fixed = True
        assert f"0/{poison_letter_id}" in await status.dead_letters(async_redis)  # as `make dead-letters` lists it
        new_id_ = await deadletter.redrive(async_redis, f"0/{poison_letter_id}")
        await async_wait_until(lambda: _charged(async_redis, poison.order_id), what="the re-driven order charged")

    assert new_id_ not in dead
    remaining = await _dead_letters(async_redis)
    assert set(remaining) == {bare_id}, "the re-driven dead letter is still there"
    assert [s(x) for x in await async_redis.lrange(LEDGER, 0, -1)] == [poison.order_id]
    redriven = await async_redis.xrange(ORDER_STREAM, new_id_, new_id_)
    envelope, payload = catalogue.decode(redriven[0][1])
    assert (envelope.subject, type(payload)) == (poison.order_id, events_pb2.OrderPlaced)
    assert s(redriven[0][1][b"subject"]) == poison.order_id  # readable beside the envelope, as when first published

