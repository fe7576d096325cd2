"""What each entry that failed did, kept in Redis: how many of its deliveries failed, how many
ended without an outcome (its consumer stopped or crashed holding it), and the last error; so
that whichever consumer finally gives up on an entry (maybe another process, after a reclaim) gives
up only on an entry at fault, and says in the dead letter what failed.

A delivery count alone says nothing of the entry: reclaims while a starved host or a failing-over
store held its handler up raise it too. So an entry over its delivery budget is given up only on
its record (`Record.at_fault`); else it is worked on once more, as an attempt that is recorded
first and cleared when it ends, so that a consumer that crashes on it is still counted.

One hash per group and partition (stream-failures:{p}:<group>, in the slot of the entries it is
about), field "<stream> <entry id>"; a record goes with its dead letter, when a
later delivery succeeds here, or (succeeded elsewhere) when maintenance finds it no longer pending.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from shoplib.commit.writes import Ack, Writes
from shoplib.store import partitions
from shoplib.store.connections import as_bytes

# Records looked at per maintenance round: bounded work, and failures are rare.
SWEEP_BATCH = 100


def key(group: str, partition: int) -> str:
    return partitions.key("stream-failures", partition, group)


def _key(ack: Ack) -> str:
    return key(ack.group, partitions.partition_of_key(ack.stream))


def _field(ack: Ack) -> str:
    return f"{ack.stream} {ack.entry_id}"


@dataclass(frozen=True)
class Record:
    """An entry's record: failed deliveries, deliveries that ended without an outcome, last error."""

    failed: int = 0
    unfinished: int = 0
    error: str = ""

    def at_fault(self, max_deliveries: int) -> bool:
        return self.failed + self.unfinished >= max_deliveries

    def reason(self) -> str:
        """What the dead letter says: every count, and the last error when there is one."""
        parts = [f"{self.failed} failed"] if self.failed else []
        if self.unfinished:
            parts.append(f"{self.unfinished} ended without an outcome (its consumer stopped or crashed holding it)")
        said = "; ".join(parts) or "no delivery failed"
        return f"{said}; last error: {self.error}" if self.error else said

    def encoded(self) -> str:
        return f"{self.failed} {self.unfinished} {self.error}"


def _decoded(raw: bytes | str) -> Record:
    text = as_bytes(raw).decode(errors="replace")
    failed, unfinished, error = [*text.split(" ", 2), "", ""][:3]
    if not (failed.isdigit() and unfinished.isdigit()):  # written before the counts were kept: one failure
        return Record(1, 0, text)
    return Record(int(failed), int(unfinished), error)


async def read(client: aioredis.Redis, ack: Ack) -> Record:
    raw = await client.hget(_key(ack), _field(ack))
    return Record() if raw is None else _decoded(raw)


async def record(client: aioredis.Redis, ack: Ack, error: str, attempt_ended: bool = False) -> Record:
    """Count one failed delivery of the entry with its error (and close the attempt opened by
    `attempt` when `attempt_ended`). Read then written: failures are rare, and two consumers
    failing one entry at the same instant would at worst count one failure less."""
    was = await read(client, ack)
    now = Record(was.failed + 1, max(was.unfinished - attempt_ended, 0), error)
    await client.hset(_key(ack), _field(ack), now.encoded())
    return now


async def attempt(client: aioredis.Redis, ack: Ack, was: Record) -> None:
    """Record a delivery about to be worked on as unfinished until it ends (see module docstring)."""
    await client.hset(_key(ack), _field(ack), Record(was.failed, was.unfinished + 1, was.error).encoded())


async def end_attempt(client: aioredis.Redis, ack: Ack) -> None:
    """An attempt ended without an outcome of the entry's own (an outage held it, a stop): uncount it."""
    was = await read(client, ack)
    await client.hset(_key(ack), _field(ack), Record(was.failed, max(was.unfinished - 1, 0), was.error).encoded())


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
