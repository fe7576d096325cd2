"""Trimming bounds a stream's memory and never drops an entry that a group still has pending."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from shoplib.redis_server import LocalRedis
from shoplib.streams import trim
from tests.events.helpers import s

STREAM = "trim-test"
ENTRIES = 500  # several radix-tree nodes (100 entries each), since approximate trimming drops whole nodes
FIRST_PENDING, PENDING = 300, 10
# How long the concurrent-ack test keeps trimming: thousands of rounds on a 2-core machine.
RACE_S = 2.0


async def _fill(client: aioredis.Redis, count: int) -> list[str]:
    async with client.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.xadd(STREAM, {"n": n})
        return [s(i) for i in await pipe.execute()]


async def _deliver_all(client: aioredis.Redis, group: str) -> None:
    await client.xreadgroup(group, "worker", {STREAM: ">"}, count=ENTRIES)


async def test_trim_removes_processed_entries_and_keeps_every_pending_one(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    ids = await _fill(async_redis, ENTRIES)
    await async_redis.xgroup_create(STREAM, "g", id="0")
    await _deliver_all(async_redis, "g")
    pending = ids[FIRST_PENDING:FIRST_PENDING + PENDING]
    await async_redis.xack(STREAM, "g", *[i for i in ids if i not in pending])

    removed = await trim.trim(async_redis, STREAM, retain_ms=0)

    left = [s(i) for i, _ in await async_redis.xrange(STREAM)]
    assert removed > 0 and len(left) == ENTRIES - removed
    assert set(pending) <= set(left), "a pending entry was trimmed"
    assert all(i in left for i in ids[ids.index(left[0]):]), "trimming removed entries above the first it kept"
    assert ids.index(left[0]) <= FIRST_PENDING
    claimed = await async_redis.xclaim(STREAM, "g", "rescuer", min_idle_time=0, message_ids=pending)
    assert [(s(i), f[b"n"]) for i, f in claimed] == [(i, str(ids.index(i)).encode()) for i in pending]


async def test_trim_keeps_what_a_lagging_group_has_not_read(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    ids = await _fill(async_redis, ENTRIES)
    await async_redis.xgroup_create(STREAM, "fast", id="0")
    await async_redis.xgroup_create(STREAM, "slow", id="0")
    await _deliver_all(async_redis, "fast")
    await async_redis.xack(STREAM, "fast", *ids)
    await async_redis.xreadgroup("slow", "worker", {STREAM: ">"}, count=FIRST_PENDING)
    await async_redis.xack(STREAM, "slow", *ids[:FIRST_PENDING])

    await trim.trim(async_redis, STREAM, retain_ms=0)

    left = [s(i) for i, _ in await async_redis.xrange(STREAM)]
    assert set(ids[FIRST_PENDING:]) <= set(left), "entries the slow group has not read were trimmed"


async def test_trim_keeps_entries_younger_than_retain_ms(local_redis: LocalRedis, async_redis: aioredis.Redis
                                                          ) -> None:
    ids = await _fill(async_redis, ENTRIES)
    await async_redis.xgroup_create(STREAM, "g", id="0")
    await _deliver_all(async_redis, "g")
    await async_redis.xack(STREAM, "g", *ids)

    assert await trim.trim(async_redis, STREAM, retain_ms=60_000) == 0
    assert await async_redis.xlen(STREAM) == ENTRIES


async def test_trim_survives_another_group_acknowledging_while_it_looks(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """Every consumer trims every group's stream in its maintenance: a group that acknowledges
    its last pending entry between trim's XINFO GROUPS and XPENDING must not break trimming
    (an exception there ends the consumer's run loop)."""
    await async_redis.xgroup_create(STREAM, "busy", id="$", mkstream=True)
    other = aioredis.Redis.from_url(local_redis.url)
    stop = asyncio.Event()

    async def acknowledge_continuously() -> None:
        while not stop.is_set():
            await other.xadd(STREAM, {"n": 1})
            for entry_id, _ in (await other.xreadgroup("busy", "w", {STREAM: ">"}))[0][1]:
                await other.xack(STREAM, "busy", entry_id)

    worker = asyncio.create_task(acknowledge_continuously())
    rounds, deadline = 0, time.monotonic() + RACE_S
    try:
        while time.monotonic() < deadline:
            await trim.trim(async_redis, STREAM, retain_ms=0)
            rounds += 1
    finally:
        stop.set()
        await worker
        await other.aclose()
    assert rounds > 100
