"""The consumer runtime against a real Redis, where issue 8 found it weak: a bug of ours that
fails on one entry, oversized entries, a full stream, and the dead letters' own bound."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from shop.v1 import events_pb2

from order_svc import domain as order_domain
from payment_svc import consumers as payment_consumers
from payment_svc.adapters import payment_key
from shopctl.local_redis.server import LocalRedis
from shoplib import catalogue
from shoplib.commit.committers import RedisCommitter
from shoplib.commit.writes import Ack, Writes
from shoplib.rules import bounds
from shoplib.store import outage
from shoplib.streams import deadletter
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

_payments = service_subscription("payment", "payment-rt")

pytestmark = pytest.mark.usefixtures("one_partition")  # streams written by hand: partition 0



def _order() -> Any:
    from shop.v1 import types_pb2

    return order_domain.new_order(new_id("key"), new_id("cust"), list(PAID_LINES), types_pb2.FLOW_MODE_EVENTS)


@pytest.fixture
def buggy_decode(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Make the runtime itself fail (a bug of ours) on the entries whose subject is in the set."""
    doomed: set[str] = set()
    real = catalogue.decode

    def decode(fields: dict[bytes, bytes]) -> Any:
        if fields.get(b"subject", b"").decode() in doomed:
            raise KeyError("a bug in the runtime")
        return real(fields)

    monkeypatch.setattr(catalogue, "decode", decode)
    yield doomed


async def test_an_entry_the_runtime_itself_keeps_failing_on_ends_in_the_dead_letters_with_the_error(
        local_redis: LocalRedis, async_redis: aioredis.Redis, buggy_decode: set[str]) -> None:
    doomed, fine = _order(), _order()
    buggy_decode.add(doomed.order_id)
    committer = RedisCommitter(async_redis)
    await publish(committer, events_pb2.OrderPlaced(order=doomed))
    async with consuming(local_redis.url, _payments, FAST) as consumer:
        await publish(committer, events_pb2.OrderPlaced(order=fine))
        await async_wait_until(lambda: async_redis.exists(payment_key(fine.order_id)), what="the other order charged")
        letters = await async_wait_until(lambda: async_redis.xrange(DEAD_STREAM), what="the doomed entry dead")
        assert alive(consumer), task_error(consumer)
    [(_, letter)] = letters
    assert "KeyError" in s(letter[b"error"]) and "a bug in the runtime" in s(letter[b"error"]), s(letter[b"error"])
    assert not await async_redis.exists(payment_key(doomed.order_id))
    assert (await async_redis.xpending(ORDER_STREAM, payment_consumers.GROUP))["pending"] == 0


async def test_an_entry_larger_than_the_bound_is_dead_lettered_with_only_its_head_kept(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    huge = b"\x0a" * (bounds.MAX_ENTRY_BYTES + 10)
    await async_redis.xadd(ORDER_STREAM, {"id": "huge", "type": "shop.order.placed.v1", "envelope": huge})
    async with consuming(local_redis.url, _payments, FAST):
        letters = await async_wait_until(lambda: async_redis.xrange(DEAD_STREAM), what="the huge entry dead-lettered")
    [(_, letter)] = letters
    assert "larger than" in s(letter[b"error"])
    assert len(letter[b"original"]) == bounds.MAX_ENTRY_BYTES and letter[b"truncated"] == b"1"


async def test_a_stream_at_its_backlog_bound_refuses_the_whole_commit_as_an_outage(
        async_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shoplib.commit.writes.STREAM_MAX_BACKLOG", 3)
    committer = RedisCommitter(async_redis)
    for n in range(3):
        writes = Writes()
        writes.xadd("bounded", {"n": n})
        assert await committer.commit(writes, (f"once-{n}", "1"))
    writes = Writes()
    writes.set("effect", "x")
    writes.xadd("bounded", {"n": 3})
    with pytest.raises(redis.exceptions.ResponseError) as refused:
        await committer.commit(writes, ("once-3", "1"))
    assert str(refused.value).startswith("BACKLOG") and outage.is_outage(refused.value)
    assert await async_redis.xlen("bounded") == 3
    assert not await async_redis.exists("effect", "once-3"), "a refused commit wrote something"


POISONED = "poisoned:{p0}"  # a stream of partition 0: its dead letters go to dead-letters:{p0}


async def test_dead_letters_are_capped_and_written_once_per_group(
        async_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadletter, "DEAD_LETTER_MAXLEN", 10)
    await async_redis.config_set("stream-node-max-entries", 5)  # so the approximate cap bites at this size
    committer = RedisCommitter(async_redis)
    await async_redis.xgroup_create(POISONED, "g", id="0", mkstream=True)
    for n in range(60):
        await async_redis.xadd(POISONED, {"junk": str(n)})
    entries = await async_redis.xreadgroup("g", "c", {POISONED: ">"})
    for entry_id, fields in entries[0][1]:
        ack = Ack(POISONED, "g", s(entry_id), only_if_pending=True)
        await deadletter.dead_letter(committer, ack, "c", 1, "junk", fields)
        await deadletter.dead_letter(committer, ack, "c2", 1, "junk again", fields)  # a racing second consumer
    length = await async_redis.xlen(DEAD_STREAM)
    assert 10 <= length <= 15, length
    assert {s(f[b"consumer"]) for _, f in await async_redis.xrange(DEAD_STREAM)} == {"c"}


async def test_an_entry_id_beyond_a_lua_number_neither_breaks_trimming_nor_stops_consumption(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """Ids are 64-bit integer pairs; trimming compares them as digit strings, never as doubles."""
    from shoplib.streams import trim

    huge = f"{int(time.time() * 1000) + 300}-100000000000000"
    await async_redis.xadd(ORDER_STREAM, {"id": "by-hand", "envelope": b"junk"}, id=huge)
    assert await trim.trim(async_redis, ORDER_STREAM, retain_ms=0) == 0  # groups created first
    later = _order()
    committer = RedisCommitter(async_redis)
    async with consuming(local_redis.url, _payments, FAST) as consumer:
        await publish(committer, events_pb2.OrderPlaced(order=later))
        await async_wait_until(lambda: async_redis.exists(payment_key(later.order_id)), what="the later order charged")
        await trim.trim(async_redis, ORDER_STREAM, retain_ms=0)
        assert alive(consumer), task_error(consumer)


async def test_an_event_on_a_stream_it_does_not_belong_to_is_dead_lettered_not_skipped(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    from shop.v1 import types_pb2

    misplaced = catalogue.wrap(events_pb2.PaymentSucceeded(payment=types_pb2.Payment(order_id="ord_misplaced")), "/t")
    await async_redis.xadd(ORDER_STREAM, catalogue.entry_fields(misplaced))
    async with consuming(local_redis.url, _payments, FAST):
        letters = await async_wait_until(lambda: async_redis.xrange(DEAD_STREAM), what="the misplaced event dead")
    [(_, letter)] = letters
    assert "belongs on payment-events" in s(letter[b"error"])
