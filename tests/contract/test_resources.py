"""A stopped service gives back what it took: no Redis connection outlives Running.stop()."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis

from shopctl.local_redis.server import LocalRedis
from shoplib.process.service import Running
from tests.contract.inprocess import STOP_GRACE_S, address, start_notification, wait_serving

# Closing a socket is seen by Redis at once; allow for a slow machine.
SETTLE_S = 1.0


@pytest.fixture
def private_redis() -> Iterator[tuple[str, redis.Redis]]:
    """A Redis of its own (URL and a client): counting connections needs a server nobody else uses."""
    server = LocalRedis().start()
    client = redis.Redis.from_url(server.url)
    try:
        yield server.url, client
    finally:
        client.close()
        server.close()


def connection_ids(client: redis.Redis) -> set[str]:
    return {entry["id"] for entry in client.client_list()}


async def wait_for_ids(client: redis.Redis, expected: set[str]) -> set[str]:
    deadline = time.monotonic() + SETTLE_S
    while (ids := connection_ids(client)) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return ids


async def test_a_stopped_service_closes_every_redis_connection_it_opened(
        private_redis: tuple[str, redis.Redis]) -> None:
    url, client = private_redis
    before = connection_ids(client)
    running: Running = await start_notification(url)
    await wait_serving(address(running.port))
    assert connection_ids(client) - before, "the service should have connected"
    await running.stop(grace=STOP_GRACE_S)
    left = await wait_for_ids(client, before)
    leaked = [entry for entry in client.client_list() if entry["id"] in left - before]
    assert not leaked, [(entry["id"], entry["cmd"]) for entry in leaked]
    assert running.spec.name == "notification"  # still referenced: the garbage collector closed nothing
