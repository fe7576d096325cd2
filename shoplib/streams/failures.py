"""The last error of each entry that failed, kept in Redis: whichever consumer finally gives up
on an entry (maybe another process, after a reclaim) can say in the dead letter what failed.

One hash per group, field "<stream> <entry id>"; a record goes with its dead letter, when a
later delivery succeeds here, or (succeeded elsewhere) when maintenance finds it no longer pending.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from shoplib.redis_conn import as_bytes
from shoplib.tx import Ack, Writes

# Records looked at per maintenance round: bounded work, and failures are rare.
SWEEP_BATCH = 100


def key(group: str) -> str:
    return f"stream-failures:{group}"


def _field(ack: Ack) -> str:
    return f"{ack.stream} {ack.entry_id}"


async def record(client: aioredis.Redis, ack: Ack, error: str) -> None:
    await client.hset(key(ack.group), _field(ack), error)


async def last(client: aioredis.Redis, ack: Ack) -> str | None:
    raw = await client.hget(key(ack.group), _field(ack))
    return None if raw is None else as_bytes(raw).decode(errors="replace")


async def forget(client: aioredis.Redis, ack: Ack) -> None:
    await client.hdel(key(ack.group), _field(ack))


def stage_forget(writes: Writes, ack: Ack) -> None:
    writes.hdel(key(ack.group), _field(ack))


async def sweep(client: aioredis.Redis, group: str) -> int:
    """Drop records of entries no longer pending in `group` (handled by another consumer)."""
    _, fields = await client.hscan(key(group), 0, count=SWEEP_BATCH)
    stale = []
    for raw in fields:
        stream, _, entry_id = as_bytes(raw).decode().partition(" ")
        if not await client.xpending_range(stream, group, min=entry_id, max=entry_id, count=1):
            stale.append(raw)
    if stale:
        await client.hdel(key(group), *stale)
    return len(stale)
