"""Events mode, for a person: the stream entries one order caused, and which group handled each."""

from __future__ import annotations

import time
from typing import Any, cast

import redis
from google.protobuf.message import Message
from shop.v1 import events_pb2, types_pb2

from shoplib import catalogue
from shoplib.store import connections, partitions
from shoplib.store.connections import as_bytes, as_entries, as_pending

STREAMS = (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS, catalogue.NOTIFICATION_EVENTS)
# The receipt may still be on its way when the order turns terminal: wait this long for it at most.
SETTLE_WAIT_S = 3.0
EXPECTED_ENTRIES = 4  # order placed, payment outcome, notification "received", notification of the outcome


def _entries(client: redis.Redis, order_id: str) -> list[tuple[float, str, str, events_pb2.EventEnvelope, Message]]:
    """(event time, stream, entry id, envelope, payload) of every entry about this order."""
    found, partition = [], partitions.partition_of_order(order_id)
    for stream in (partitions.stream(base, partition) for base in STREAMS):  # the order's own partition
        for entry_id, fields in as_entries(client.xrevrange(stream, count=500)):
            if fields.get(b"subject") == order_id.encode():
                envelope, payload = catalogue.decode(fields)
                found.append((envelope.time.ToNanoseconds() / 1e6, stream, entry_id.decode(), envelope, payload))
    return sorted(found, key=lambda item: item[0])


def _client(redis_url: str, **client_kwargs: Any) -> redis.Redis:
    """A cluster client under REDIS_CLUSTER=1 (it follows the slot of each stream), else a plain one."""
    if connections.clustered():
        return cast(redis.Redis, redis.RedisCluster.from_url(redis_url, **client_kwargs))
    return redis.Redis.from_url(redis_url, **client_kwargs)


def _handled_by(client: redis.Redis, stream: str, entry_id: str) -> str:
    if partitions.base(stream) == catalogue.NOTIFICATION_EVENTS:
        return "(no group: a record for people and benchmarks)"
    states = []
    for group in client.xinfo_groups(stream):
        name = as_bytes(group["name"]).decode()
        pending = as_pending(client.xpending_range(stream, name, min=entry_id, max=entry_id, count=1))
        state = f"pending at {pending[0]['consumer'].decode()}" if pending else "acknowledged"
        states.append(f"{name} {state}")
    return ", ".join(states)


def _what(payload: object) -> str:
    note = getattr(payload, "notification", None)
    if note is not None:
        return types_pb2.NotificationKind.Name(note.kind).removeprefix("NOTIFICATION_KIND_")
    payment = getattr(payload, "payment", None)
    return f"payment {payment.payment_id}" if payment is not None else "order stored, PENDING"


def print_stream_trail(redis_url: str, order_id: str, **client_kwargs: Any) -> None:
    """`client_kwargs`: who to be to Redis (the ops user under SECURE=1)."""
    client = _client(redis_url, **client_kwargs)
    deadline = time.monotonic() + SETTLE_WAIT_S
    entries = _entries(client, order_id)
    while len(entries) < EXPECTED_ENTRIES and time.monotonic() < deadline:
        time.sleep(0.05)
        entries = _entries(client, order_id)
    print("  the event trail in Redis Streams (time from the first event; then who handled it):")
    first = entries[0][0] if entries else 0.0
    for at, stream, entry_id, envelope, payload in entries:
        offset = f"+{at - first:.1f}"
        print(f"    {offset:>8} ms  {stream:<20} {entry_id:<16} {envelope.type:<27} {_what(payload)}")
        print(f"    {'':>11}  {'':<20} by {envelope.source}  →  {_handled_by(client, stream, entry_id)}")
    client.close()
