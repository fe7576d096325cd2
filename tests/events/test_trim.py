"""Trimming bounds a stream's memory and never drops an entry that a group still has pending."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from shopctl.local_redis.server import LocalRedis
from shoplib.streams import trim
from tests.events.helpers import s

STREAM = "trim-test"
ENTRIES = 500  # several radix-tree nodes (100 entries each), since approximate trimming drops whole nodes
FIRST_PENDING, PENDING = 300, 10
# How long trimming races with consumption: a bound on time, whatever number of rounds fit in it.
RACE_S = 2.0
# The racing groups: one acknowledges at once, the other keeps its newest HELD entries pending
# (more than a radix-tree node, so a trim that ignored them would drop whole nodes of them).
EAGER, HOLDING = "eager", "holding"
GROUPS = (EAGER, HOLDING)
HELD = 150
APPEND_EACH = 20  # entries appended per round of the consuming side


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


async def test_trimming_while_groups_consume_never_drops_an_entry_a_group_still_needs(
        local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """Every consumer trims every group's stream in its maintenance, while the groups go on
    reading and acknowledging. For RACE_S, trimming runs again and again while numbered entries
    are appended and consumed by two groups: one acknowledges each entry at once (its pending
    count keeps dropping to zero), the other keeps its newest HELD entries pending. Each group
    still gets every entry, in order, and no entry it holds pending loses its fields."""
    for group in GROUPS:
        await async_redis.xgroup_create(STREAM, group, id="$", mkstream=True)
    other = aioredis.Redis.from_url(local_redis.url)
    consumption = Consumption(other)
    worker = asyncio.create_task(consumption.run())
    removed, deadline = 0, time.monotonic() + RACE_S
    try:
        while time.monotonic() < deadline and not worker.done():
            removed += await trim.trim(async_redis, STREAM, retain_ms=0)
    finally:
        consumption.stop.set()
        await worker  # re-raises what the consuming side found
        await other.aclose()

    assert removed > 0, "nothing was trimmed: the race did not happen"
    for group in GROUPS:
        assert consumption.received[group] == list(range(consumption.appended)), f"{group} missed entries"
    [[_, still_pending]] = await async_redis.xreadgroup(HOLDING, "w", {STREAM: "0"})
    assert [s(i) for i, _ in still_pending] == consumption.held and all(f for _, f in still_pending)


class Consumption:
    """Appends numbered entries and consumes them as GROUPS; after each round, checks that the
    oldest entry HOLDING has pending is still in the stream (trimming only ever removes a prefix)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client, self.stop, self.appended = client, asyncio.Event(), 0
        self.received: dict[str, list[int]] = {group: [] for group in GROUPS}
        self.held: list[str] = []  # entry ids HOLDING has pending, oldest first

    async def run(self) -> None:
        while not self.stop.is_set():
            async with self.client.pipeline(transaction=False) as pipe:
                for n in range(self.appended, self.appended + APPEND_EACH):
                    pipe.xadd(STREAM, {"n": n})
                await pipe.execute()
            self.appended += APPEND_EACH
            for group in GROUPS:
                await self._consume(group)
            if self.held:
                oldest = await self.client.xrange(STREAM, min=self.held[0], max=self.held[0])
                assert oldest, f"entry {self.held[0]}, pending in {HOLDING}, was trimmed"

    async def _consume(self, group: str) -> None:
        reply = await self.client.xreadgroup(group, "w", {STREAM: ">"})
        entries = [(s(i), fields) for i, fields in (reply[0][1] if reply else [])]
        self.received[group] += [int(fields[b"n"]) for _, fields in entries]
        done = [i for i, _ in entries]
        if group == HOLDING:
            self.held += done
            done, self.held = self.held[:-HELD], self.held[-HELD:]
        if done:
            await self.client.xack(STREAM, group, *done)
