"""XREADGROUP for one consumer, with the reply turned into entries.

On one Redis the reads travel on a lean connection of their own (`RedisPipe`: hiredis parses the
reply, no per-command Python of redis-py), as the commits do; on a Redis Cluster they go through
redis-py's cluster client, which routes each read to the node of its slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis.asyncio as aioredis

from shoplib.store.connections import SOCKET_TIMEOUT_S
from shoplib.store.lean import RedisPipe
from shoplib.streams.subscription import Entry

# The reply of XREADGROUP as hiredis gives it: [stream, [[entry id, [field, value, ...] or None
# when the entry was deleted while pending], ...]] per stream, or None when nothing came.
RawReply = list[tuple[bytes, list[tuple[bytes, list[bytes] | None]]]] | None
# redis-py's parse of the same (RESP2, bytes): the fields as a dict.
ParsedReply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]] | None


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(flat: list[bytes] | None) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}


class GroupReader:
    """Reads of one consumer of one group. Raises what the connection raises (outages as redis-py's
    ConnectionError / TimeoutError, NOGROUP as ResponseError)."""

    def __init__(self, reader: aioredis.Redis, group: str, consumer: str, block_ms: int) -> None:
        self._reader, self._group, self._consumer = reader, group, consumer
        # A blocked read may take block_ms before its reply: the deadline is on top of that.
        self._pipe = RedisPipe.of(reader, block_ms / 1000 + SOCKET_TIMEOUT_S, drop_on_cancel=True)

    async def read(self, streams: Sequence[str], from_id: str, count: int, block_ms: int | None) -> list[Entry]:
        """Up to `count` entries per stream after `from_id` ("0": this consumer's pending entries;
        ">": new ones, waiting up to `block_ms`, or not at all when None)."""
        if self._pipe is None:
            reply = await self._reader.xreadgroup(self._group, self._consumer, dict.fromkeys(streams, from_id),
                                                  count=count, block=block_ms)
            # redis-py types the reply of both protocols at once; ours is RESP2 with bytes.
            return [(text(stream), text(entry_id), fields or {})
                    for stream, entries in cast(ParsedReply, reply) or () for entry_id, fields in entries]
        block = ("BLOCK", block_ms) if block_ms is not None else ()
        [raw] = await self._pipe.execute([("XREADGROUP", "GROUP", self._group, self._consumer, "COUNT", count,
                                           *block, "STREAMS", *streams, *[from_id] * len(streams))])
        if isinstance(raw, Exception):
            raise raw
        return [(stream.decode(), entry_id.decode(), _fields(flat))
                for stream, entries in cast(RawReply, raw) or () for entry_id, flat in entries]

    async def aclose(self) -> None:
        """Closes its own connection; the redis-py client it was given stays its owner's."""
        if self._pipe is not None:
            await self._pipe.close()
