"""Fixtures shared by every level: one real Redis per test session, and a client to inspect it.

Unit tests use none of the Redis fixtures (they run on shoplib.testing.MemoryStore); the
contract and end-to-end tests share one Redis and keep apart by random ids.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shopctl.local_redis.cluster import LocalCluster
from shopctl.local_redis.server import LocalRedis

# Under CI=true every skip but those the CI step allows fails the run (tests/ci_skips.py).
from tests.ci_skips import (  # noqa: F401
    pytest_collectreport,
    pytest_runtest_logreport,
    pytest_runtest_makereport,
    pytest_sessionfinish,
)

# A Docker engine that does not answer within this long is treated as absent.
DOCKER_PING_TIMEOUT_S = 2


def _docker_engine_reachable() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=DOCKER_PING_TIMEOUT_S)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no permission, no daemon: all mean "no engine"
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis for the session: a container where Docker runs, else a private redis-server."""
    if _docker_engine_reachable():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as container:
            host = container.get_container_host_ip()
            yield f"redis://{host}:{container.get_exposed_port(6379)}/0"
        return
    server = LocalRedis().start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client for assertions on what the services stored (never for set-up shortcuts)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A private 3-master + 3-replica Redis Cluster for the session (redis-server 7+ from PATH)."""
    with LocalCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: LocalCluster) -> str:
    """A node of the session's cluster, for `REDIS_CLUSTER=1` clients (any node will do)."""
    return redis_cluster.url

