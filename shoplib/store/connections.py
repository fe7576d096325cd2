"""Connections to Redis, with the bounds a service needs when Redis goes away."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, TypedDict, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import StreamRangeResponse, XPendingRangeResponse, ZSetRangeResponse

from shoplib import config
from shoplib.security import redis_auth
from shoplib.store.cluster import RefreshingCluster

# A command that takes longer than this means Redis is gone or stuck: fail, do not hang.
SOCKET_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0
# redis-py retries a command this many times on a broken connection (backoff below), so a
# restarted Redis is reconnected transparently; past that the caller sees the error.
COMMAND_RETRIES = 2
# Connections per process; a caller waits up to POOL_WAIT_S for a free one instead of failing.
POOL_SIZE = 128
POOL_WAIT_S = 2.0
# TCP keepalive on every connection to Redis: the first probe after 10 s idle (below the idle
# timeouts of NATs and cloud load balancers, 60-350 s, so they keep the connection), then every
# 5 s; 3 unanswered probes (25 s idle in all) close it, so a peer that vanished without a FIN is
# found even on a connection nobody uses (a pool's spare, a pub/sub listener, a blocked read).
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_PROBES = 3


def keepalive_tuning() -> dict[int, int]:
    """TCP-level keepalive options (setsockopt IPPROTO_TCP) where the platform has them."""
    wanted = {"TCP_KEEPIDLE": KEEPALIVE_IDLE_S, "TCP_KEEPINTVL": KEEPALIVE_INTERVAL_S, "TCP_KEEPCNT": KEEPALIVE_PROBES}
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


def _keepalive() -> dict[str, Any]:
    return {"socket_keepalive": True, "socket_keepalive_options": keepalive_tuning()}


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


def stop_if_cancelled() -> None:
    """Raise CancelledError when this task was asked to stop. redis-py 8.1's asyncio client
    swallows a cancellation that lands while a command is on the wire (measured: 260 of 300
    cancellations of a loop of ZRANGEBYSCOREs were lost), so a loop that awaits Redis round after
    round calls this after each round, or a stop would wait for it for ever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def clustered() -> bool:
    """REDIS_CLUSTER=1: REDIS_URL names any node of a Redis Cluster, and every client is a
    cluster client (it follows slots, MOVED/ASK redirections and failovers)."""
    return config.optional("REDIS_CLUSTER", False, config.flag)


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.2, base=0.02), COMMAND_RETRIES)


def _cluster(url: str, socket_timeout_s: float) -> aioredis.Redis:
    """A cluster client, typed as the single-node client: RedisCluster offers the same command
    methods with the same signatures (redis-py types them on one shared mixin). Where the two
    differ (pipelined scripts, reads over several slots) the callers check `is_cluster`. It
    re-reads its slot map after a failover whatever command failed (RefreshingCluster). Under
    `rediss://` each node's new connections read the TLS files again (redis_auth.renew_cluster_tls)."""
    client = RefreshingCluster.from_url(url, max_connections=POOL_SIZE, socket_timeout=socket_timeout_s,
                                        socket_connect_timeout=CONNECT_TIMEOUT_S, retry=_retry(),
                                        retry_on_error=[RedisConnectionError, RedisTimeoutError],
                                        **_keepalive(), **redis_auth.connection_kwargs(url))
    return cast(aioredis.Redis, redis_auth.renew_cluster_tls(client))


def node_client(node: ClusterNode) -> aioredis.Redis:
    """A single-node client to one node of a cluster client, for what must run on one connection to
    that node (a write then WAIT): the same user, password file, TLS files, timeouts and keepalive
    as the cluster client's own connections to it (its connection class and keyword template), and
    `connect`'s retry of a broken connection (the cluster client retries at its own level instead)."""
    kwargs = {**node.connection_kwargs, "retry": _retry(), "retry_on_error": [RedisConnectionError, RedisTimeoutError]}
    pool = aioredis.ConnectionPool(connection_class=node.connection_class, max_connections=POOL_SIZE, **kwargs)
    return aioredis.Redis.from_pool(pool)


def connect(url: str) -> aioredis.Redis:
    if clustered():
        return _cluster(url, SOCKET_TIMEOUT_S)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=10,
        **_keepalive(),
        **redis_auth.connection_kwargs(url),  # user, password file, TLS CA: none unless configured
    )
    # The client owns the pool: aclose() closes every connection.
    return aioredis.Redis.from_pool(redis_auth.renew_tls(pool))


def blocking_client(url: str, block_s: float) -> aioredis.Redis:
    """A client for XREADGROUP BLOCK: its socket timeout must outlast the block."""
    if clustered():
        return _cluster(url, block_s + SOCKET_TIMEOUT_S)
    client = aioredis.Redis.from_url(
        url,
        socket_timeout=block_s + SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        max_connections=POOL_SIZE,
        **_keepalive(),
        **redis_auth.connection_kwargs(url),
    )
    redis_auth.renew_tls(client.connection_pool)
    return client
