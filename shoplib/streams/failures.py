"""The last error of each entry that failed, kept in Redis: whichever consumer finally gives up
on an entry (maybe another process, after a reclaim) can say in the dead letter what failed.

One hash per group and partition (stream-failures:{p}:<group>, in the slot of the entries it is
about), field "<stream> <entry id>"; a record goes with its dead letter, when a
later delivery succeeds here, or (succeeded elsewhere) when maintenance finds it no longer pending.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from shoplib import partitions
from shoplib.redis_conn import as_bytes
from shoplib.tx import Ack, Writes

# Records looked at per maintenance round: bounded work, and failures are rare.
SWEEP_BATCH = 100


def key(group: str, partition: int) -> str:
    return partitions.key("stream-failures", partition, group)


def _key(ack: Ack) -> str:
    return key(ack.group, partitions.partition_of_key(ack.stream))


def _field(ack: Ack) -> str:
    return f"{ack.stream} {ack.entry_id}"


async def record(client: aioredis.Redis, ack: Ack, error: str) -> None:
    await client.hset(_key(ack), _field(ack), error)


async def last(client: aioredis.Redis, ack: Ack) -> str | None:
    raw = await client.hget(_key(ack), _field(ack))
    return None if raw is None else as_bytes(raw).decode(errors="replace")


async def forget(client: aioredis.Redis, ack: Ack) -> None:
    await client.hdel(_key(ack), _field(ack))


def stage_forget(writes: Writes, ack: Ack) -> None:
    writes.hdel(_key(ack), _field(ack))


async def sweep(client: aioredis.Redis, group: str) -> int:
    """Drop records of entries no longer pending in `group` (handled by another consumer); the
    records of every partition are read in one pipeline."""
    keys = [key(group, p) for p in partitions.every()]
    async with client.pipeline(transaction=False) as pipe:
        for records in keys:
            pipe.hscan(records, 0, count=SWEEP_BATCH)
        pages = await pipe.execute()
    return sum([await _sweep(client, group, records, fields) for records, (_, fields) in zip(keys, pages, strict=True)
                if fields])


async def _sweep(client: aioredis.Redis, group: str, records: str, fields: dict[bytes, bytes]) -> int:
    stale = []
    for raw in fields:
        stream, _, entry_id = as_bytes(raw).decode().partition(" ")
        if not await client.xpending_range(stream, group, min=entry_id, max=entry_id, count=1):
            stale.append(raw)
    if stale:
        await client.hdel(records, *stale)
    return len(stale)
