"""The final read: everything the checker judges, read straight from Redis once the run has drained.

Each run has a Redis of its own, so whole-store reads (every order, the whole ledger, every
stream) are claims about this run alone. Key names are the services' own (see their adapters),
read in every partition (shoplib.store.partitions); every read also works through a cluster client.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from shop.v1 import events_pb2, types_pb2

from notification_svc.adapters import notes_key
from order_svc.adapters import pending_key, redriven_key
from payment_svc.adapters import ledger_key
from shoplib import catalogue
from shoplib.store import partitions
from shoplib.store.connections import as_bytes, as_entries, as_members, as_pending
from shoplib.streams.settings import DEAD_LETTERS

GROUPED_STREAMS = (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS)  # the streams consumer groups read
ALL_STREAMS = (*GROUPED_STREAMS, catalogue.NOTIFICATION_EVENTS)
MODES = (types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS)
PLACED = catalogue.BY_MESSAGE[events_pb2.OrderPlaced].name
CHUNK = 2_000  # keys per MGET / entries per XRANGE page: bounded replies, few round trips


def s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def every(bases: tuple[str, ...]) -> list[str]:
    """The streams of every partition of these (base names)."""
    return [stream for base in bases for stream in partitions.streams(base)]


async def _sum(replies: list[Any]) -> int:
    """The sum of counts (LLEN, ZCARD, XLEN, GET of a counter) asked of several keys."""
    return sum([int(await reply or 0) for reply in replies])


def home(stream: str, fields: dict[str, str | bytes]) -> str:
    """Where an entry written by hand goes: `stream` (base name) of its subject's partition, or of
    partition 0 when it names no order of this deployment (the consumers read every partition)."""
    subject = fields.get("subject", b"")
    try:
        partition = partitions.partition_of_order(subject.decode() if isinstance(subject, bytes) else subject)
    except ValueError:
        partition = 0
    return partitions.stream(stream, partition)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class InFlight:
    """Stream entries some group has not finished: pending (delivered, unacknowledged) or unread."""

    entries: int = 0
    subjects: dict[str, str] = field(default_factory=dict)  # order id -> where it waits


@dataclass
class Snapshot:
    orders: dict[str, types_pb2.Order]
    charges: Counter[str]  # order id -> ledger entries
    notices: dict[str, Counter[types_pb2.NotificationKind.ValueType]]  # order id -> notification kind -> count
    pending_sync: set[str]
    pending_events: set[str]  # events orders the reconciler will re-drive (their event lost or stuck)
    in_flight: InFlight
    dead_letters: list[tuple[str, dict[bytes, bytes]]]
    placed: Counter[str] | None  # OrderPlaced subjects in order-events (when read)


async def scan_values(client: aioredis.Redis, pattern: str) -> dict[str, bytes]:
    keys = [s(k) async for k in client.scan_iter(match=pattern, count=CHUNK)]
    found: dict[str, bytes] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        async with client.pipeline(transaction=False) as pipe:  # GETs: a cluster splits them by node
            for key in chunk:
                pipe.get(key)
            values = await pipe.execute()
        found.update({k: as_bytes(v) for k, v in zip(chunk, values, strict=True) if v is not None})
    return found


async def orders(client: aioredis.Redis) -> dict[str, types_pb2.Order]:
    raw = await scan_values(client, "order:{p*}:ord_*")
    return {key.rpartition(":")[2]: types_pb2.Order.FromString(value) for key, value in raw.items()}


async def notices(client: aioredis.Redis, order_ids: list[str]
                  ) -> dict[str, Counter[types_pb2.NotificationKind.ValueType]]:
    found: dict[str, Counter[types_pb2.NotificationKind.ValueType]] = {}
    for start in range(0, len(order_ids), CHUNK):
        chunk = order_ids[start:start + CHUNK]
        async with client.pipeline(transaction=False) as pipe:
            for order_id in chunk:
                pipe.lrange(notes_key(order_id), 0, -1)
            lists = await pipe.execute()
        for order_id, items in zip(chunk, lists, strict=True):
            found[order_id] = Counter(types_pb2.Notification.FromString(raw).kind for raw in items)
    return found


async def entries(client: aioredis.Redis, stream: str, after: str = "-") -> list[tuple[str, dict[bytes, bytes]]]:
    """Every entry of `stream` after `after` (exclusive unless '-'), page by page."""
    found: list[tuple[str, dict[bytes, bytes]]] = []
    low = after if after == "-" else f"({after}"
    while page := await client.xrange(stream, low, "+", count=CHUNK):
        found += [(s(i), f) for i, f in as_entries(page)]
        low = f"({found[-1][0]}"
    return found


async def groups(client: aioredis.Redis, stream: str) -> list[dict[str, object]]:
    try:
        found = await client.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return []
    return [{k: s(v) if isinstance(v, bytes) else v for k, v in g.items()} for g in found]


async def pending_of(client: aioredis.Redis, stream: str, group: str, consumer: str | None = None
                     ) -> list[tuple[str, str, int]]:
    """(entry id, consumer, deliveries) of every pending entry of a group (or of one consumer)."""
    rows = await client.xpending_range(stream, group, min="-", max="+", count=100_000, consumername=consumer)
    return [(s(r["message_id"]), s(r["consumer"]), int(r["times_delivered"])) for r in as_pending(rows)]


async def subject_of(client: aioredis.Redis, stream: str, entry_ids: list[str]) -> dict[str, str]:
    async with client.pipeline(transaction=False) as pipe:
        for entry_id in entry_ids:
            pipe.xrange(stream, entry_id, entry_id)
        pages = await pipe.execute()
    return {i: s(page[0][1].get(b"subject", b"")) for i, page in zip(entry_ids, pages, strict=True) if page}


async def in_flight(client: aioredis.Redis) -> InFlight:
    found = InFlight()
    for stream in every(GROUPED_STREAMS):
        for group in await groups(client, stream):
            name = str(group["name"])
            pending = [i for i, _, _ in await pending_of(client, stream, name)]
            unread = await entries(client, stream, str(group["last-delivered-id"]))
            found.entries += len(pending) + len(unread)
            for entry_id, subject in (await subject_of(client, stream, pending)).items():
                found.subjects[subject] = f"{stream}/{name}: pending {entry_id}"
            for entry_id, fields in unread:
                found.subjects[s(fields.get(b"subject", b""))] = f"{stream}/{name}: unread {entry_id}"
    return found


async def placed_subjects(client: aioredis.Redis) -> Counter[str]:
    return Counter([s(f.get(b"subject", b"")) for stream in partitions.streams(catalogue.ORDER_EVENTS)
                    for _, f in await entries(client, stream) if f.get(b"type") == PLACED.encode()])


async def members(client: aioredis.Redis, mode: types_pb2.FlowMode.ValueType) -> set[str]:
    """The orders of a mode not settled yet, in every partition."""
    return {s(i) for p in partitions.every() for i in as_members(await client.zrange(pending_key(mode, p), 0, -1))}


async def charged(client: aioredis.Redis, order_id: str) -> bool:
    """The ledger of the order's partition holds a charge of it."""
    return await client.lpos(ledger_key(partitions.partition_of_order(order_id)), order_id) is not None


async def pending_orders(client: aioredis.Redis, mode: types_pb2.FlowMode.ValueType) -> int:
    return await _sum([client.zcard(pending_key(mode, p)) for p in partitions.every()])


async def redriven(client: aioredis.Redis) -> int:
    return await _sum([client.get(redriven_key(p)) for p in partitions.every()])


async def dead_letters(client: aioredis.Redis) -> list[tuple[str, dict[bytes, bytes]]]:
    return [entry for letters in partitions.streams(DEAD_LETTERS) for entry in await entries(client, letters)]


async def read(client: aioredis.Redis, with_placed: bool = False) -> Snapshot:
    stored = await orders(client)
    ledger = Counter([s(i) for p in partitions.every() for i in await client.lrange(ledger_key(p), 0, -1)])
    return Snapshot(
        orders=stored, charges=ledger, notices=await notices(client, sorted(stored)),
        pending_sync=await members(client, types_pb2.FLOW_MODE_SYNC),
        pending_events=await members(client, types_pb2.FLOW_MODE_EVENTS),
        in_flight=await in_flight(client), dead_letters=await dead_letters(client),
        placed=await placed_subjects(client) if with_placed else None)


async def progress(client: aioredis.Redis) -> tuple[object, ...]:
    """A cheap fingerprint of everything that moves while the pipeline works (for the drain)."""
    marks: list[object] = []
    for stream in every(ALL_STREAMS):
        marks.append(await client.xlen(stream))
        marks += [(g["name"], g["last-delivered-id"], g["pending"]) for g in await groups(client, stream)]
    marks += [await _sum([client.llen(ledger_key(p)) for p in partitions.every()]),
              *[await pending_orders(client, m) for m in MODES], await redriven(client),
              await _sum([client.xlen(letters) for letters in partitions.streams(DEAD_LETTERS)])]
    return tuple(marks)


async def drained(client: aioredis.Redis) -> bool:
    """Every group has read and acknowledged every entry, and no order waits to be resumed or re-driven."""
    for stream in every(GROUPED_STREAMS):
        if not await client.exists(stream):
            continue
        last = s((await client.xinfo_stream(stream))["last-generated-id"])
        for group in await groups(client, stream):
            if group["pending"] or _id_key(str(group["last-delivered-id"])) < _id_key(last):
                return False
    return not any([await pending_orders(client, m) for m in MODES])
