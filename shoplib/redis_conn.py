"""Connections to Redis, with the bounds a service needs when Redis goes away."""

from __future__ import annotations

from typing import TypedDict, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import StreamRangeResponse, XPendingRangeResponse, ZSetRangeResponse

# A command that takes longer than this means Redis is gone or stuck: fail, do not hang.
SOCKET_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0
# redis-py retries a command this many times on a broken connection (backoff below), so a
# restarted Redis is reconnected transparently; past that the caller sees the error.
COMMAND_RETRIES = 2
# Connections per process; a caller waits up to POOL_WAIT_S for a free one instead of failing.
POOL_SIZE = 128
POOL_WAIT_S = 2.0


def as_bytes(reply: bytes | str) -> bytes:
    """A reply as our clients get it: they never set decode_responses, so it is bytes
    (redis-py types replies `bytes | str` whatever the setting)."""
    return cast(bytes, reply)


def as_entries(reply: StreamRangeResponse | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XRANGE / XREVRANGE entries as our clients get them: bytes ids and fields. redis-py allows
    None for the reply and for an id or its fields; a range read returns none of those."""
    return cast("list[tuple[bytes, dict[bytes, bytes]]]", reply)


def as_members(reply: ZSetRangeResponse) -> list[bytes]:
    """ZRANGE / ZRANGEBYSCORE without scores: members only (redis-py types the scored shapes too)."""
    return cast("list[bytes]", reply)


class PendingRow(TypedDict):
    """One XPENDING row as redis-py parses it (it types every field `bytes | str | int`)."""

    message_id: bytes
    consumer: bytes
    time_since_delivered: int
    times_delivered: int


def as_pending(reply: XPendingRangeResponse) -> list[PendingRow]:
    return cast("list[PendingRow]", reply)


def connect(url: str) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), COMMAND_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=10,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes every connection


def blocking_client(url: str, block_s: float) -> aioredis.Redis:
    """A client for XREADGROUP BLOCK: its socket timeout must outlast the block."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=block_s + SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        max_connections=POOL_SIZE,
    )
