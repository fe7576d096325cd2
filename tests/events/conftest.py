"""Fixtures of the events-mode integration tests: self-contained, one private Redis each.

Stream names are fixed (order-events, payment-events, dead-letters), so tests whose claims are
about whole streams get a fresh redis-server (about 50 ms to start), never the one on 6379.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from shopctl.local_redis.server import LocalRedis
from shopctl.stack import Stack
from shoplib.store import partitions
from tests.events.helpers import FAST_ENV, Clients


@pytest.fixture
def one_partition(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """PARTITIONS=1, here and in the services a test starts: tests that write or read one stream by
    hand (poison entries, dead letters) name that partition's streams (helpers.ORDER_STREAM, ...).
    What partitions change is covered by the unit layout tests and the cluster end-to-end test."""
    monkeypatch.setenv("PARTITIONS", "1")
    partitions.count.cache_clear()
    yield
    partitions.count.cache_clear()


@pytest.fixture
def local_redis() -> Iterator[LocalRedis]:
    """A private redis-server for one test (AOF on, free port, own data directory)."""
    server = LocalRedis().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def sync_redis(local_redis: LocalRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(local_redis.url)
    yield client
    client.close()


@pytest.fixture
async def async_redis(local_redis: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(local_redis.url)
    yield client
    await client.aclose()


@contextlib.contextmanager
def running_stack(redis_url: str, log_dir: Path, **env: str) -> Iterator[Stack]:
    """The four services as real processes on `redis_url`, with fast stream timings."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIS_URL", redis_url)  # read once, here: the Stack then starts no Redis of its own
        stack = Stack(free_ports=True, log_dir=log_dir, env={**FAST_ENV, "FAULTS": "", **env})
    assert stack.redis_url == redis_url  # the Stack uses our Redis, never one of its own
    with stack:
        yield stack


StackFactory = Callable[..., contextlib.AbstractContextManager[Stack]]


@pytest.fixture
def stack_on(tmp_path: Path) -> StackFactory:
    """stack_on(redis_url, **env) -> context manager of a running Stack logging to tmp_path."""
    return lambda redis_url, **env: running_stack(redis_url, tmp_path, **env)


@pytest.fixture
def clients_of() -> Iterator[Callable[[Stack], Clients]]:
    made: list[Clients] = []

    def make(stack: Stack) -> Clients:
        made.append(Clients.of(stack))
        return made[-1]

    yield make
    for clients in made:
        clients.close()

