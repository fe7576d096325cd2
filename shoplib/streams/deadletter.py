"""Dead letters: entries no handler can process, kept with everything needed to look and re-drive."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.typing import EncodableT, FieldT
from shop.v1 import events_pb2

from shoplib.commit.writes import Ack, Committer, Value, Writes
from shoplib.observability import later_work
from shoplib.rules.bounds import DEAD_LETTER_MAXLEN, MAX_ENTRY_BYTES, MAX_ERROR_CHARS, MAX_ID_LENGTH
from shoplib.store import partitions
from shoplib.store.connections import as_entries
from shoplib.streams import failures
from shoplib.streams.settings import DEAD_LETTERS


def original_bytes(fields: dict[bytes, bytes]) -> bytes:
    """The envelope as it was, or (no envelope field) every field, so nothing is lost; at most
    MAX_ENTRY_BYTES (a larger entry was never one of ours: its head is enough to look at)."""
    if b"envelope" in fields:
        return fields[b"envelope"][:MAX_ENTRY_BYTES]
    return b"\n".join(k + b"=" + v for k, v in fields.items())[:MAX_ENTRY_BYTES]


DeadLetterSink = Callable[[Committer, Ack, str, int, str, dict[bytes, bytes]], Awaitable[None]]


async def dead_letter(committer: Committer, ack: Ack, consumer: str, deliveries: int, error: str,
                      fields: dict[bytes, bytes]) -> None:
    """Move one entry to the dead letters and acknowledge it, in one atomic step (with
    `ack.only_if_pending`, only while the entry is still pending: once per group)."""
    writes = Writes()
    where: dict[str, Value] = {"stream": ack.stream, "entry_id": ack.entry_id, "group": ack.group, "consumer": consumer,
             "deliveries": deliveries, "error": error[:MAX_ERROR_CHARS]}
    home = partitions.stream(DEAD_LETTERS, partitions.partition_of_key(ack.stream))  # the entry's slot
    writes.xadd(home, {**where, **_what(fields)}, maxlen=DEAD_LETTER_MAXLEN)
    failures.stage_forget(writes, ack)
    await committer.commit(writes, None, ack)


def _what(fields: dict[bytes, bytes]) -> dict[str, bytes | int]:
    """The entry itself, bounded: its readable type and id, and its original bytes."""
    original = original_bytes(fields)
    return {"type": fields.get(b"type", b"")[:MAX_ID_LENGTH], "event_id": fields.get(b"id", b"")[:MAX_ID_LENGTH],
            "original": original, "has_envelope": int(b"envelope" in fields),
            "truncated": int(len(original) < len(fields.get(b"envelope", b"")))}


async def redrive(client: aioredis.Redis, ref: str) -> str:
    """Put a dead letter's original envelope back on its stream (consumers are idempotent), then
    remove the dead letter. Returns the new entry id. `ref` is "<partition>/<id>" as `make
    dead-letters` lists them, or a bare id, looked for in every partition (P reads: an operator's
    command, not a hot path); KeyError when absent, ValueError when a bare id is in several."""
    partition, _, entry_id = ref.rpartition("/")
    where = [partitions.stream(DEAD_LETTERS, int(partition))] if partition else partitions.streams(DEAD_LETTERS)
    found = [(letters, rows[0][1]) for letters in where
             if (rows := as_entries(await client.xrange(letters, entry_id, entry_id)))]
    if not found:
        raise KeyError(f"no dead letter {ref}")
    if len(found) > 1:
        raise ValueError(f"dead letter {entry_id} is in {len(found)} partitions: name one as P/{entry_id} "
                         f"({', '.join(str(partitions.partition_of_key(letters)) for letters, _ in found)})")
    return await _redrive(client, found[0][0], entry_id, found[0][1])


async def _redrive(client: aioredis.Redis, letters: str, entry_id: str, fields: dict[bytes, bytes]) -> str:
    if fields.get(b"has_envelope") != b"1":
        raise ValueError(f"dead letter {entry_id} has no envelope to re-drive (it was not one of our events)")
    envelope = _envelope(fields[b"original"])
    stream = fields[b"stream"].decode()
    entry: dict[FieldT, EncodableT] = {"id": fields[b"event_id"], "type": fields[b"type"],  # entry_fields' shape
                                       "subject": envelope.subject if envelope else "",
                                       "envelope": fields[b"original"]}
    ref = f"{partitions.partition_of_key(letters)}/{entry_id}"
    with later_work.redriving(stream, ref, envelope) as redrive:
        entry.update(redrive.fields)  # the re-drive's context, for each delivery to link to
        # Both keys share the partition's slot, so this transaction also runs on a cluster.
        async with client.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, entry)
            pipe.xdel(letters, entry_id)
            new_id, _ = await pipe.execute()
        redrive.put_back(new_id.decode())
    return str(new_id.decode())


def _envelope(original: bytes) -> events_pb2.EventEnvelope | None:
    """The dead letter's envelope, or None when its bytes do not parse (it is put back all the same:
    the consumers say why it cannot be handled)."""
    try:
        return events_pb2.EventEnvelope.FromString(original)
    except DecodeError:
        return None
