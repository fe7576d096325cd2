"""Fixtures shared by every level: one real Redis per test session, and a client to inspect it.

Unit tests use none of the Redis fixtures (they run on shoplib.testing.MemoryStore); the
contract and end-to-end tests share one Redis and keep apart by random ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from shoplib import config
from shoplib.redis_cluster import LocalCluster
from shoplib.redis_server import LocalRedis
from tests.support import TLS_UNAVAILABLE

# Under CI=true a skipped test is a test that did not run, so the run fails on it. The one
# exception, in the CI step that hides the machine's redis-server as a newcomer's machine has
# none (SHOP_CI_STEP=newcomer): TLS to Redis, which no Python-installed redis-server offers.
CI_STEP_ALLOWED_SKIPS = {"newcomer": (TLS_UNAVAILABLE,)}
_skipped: list[tuple[str, str]] = []  # (test id, reason) of every skip this session

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


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _skip_reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _skipped.append((report.nodeid, _skip_reason(report)))


def disallowed_skips(skipped: list[tuple[str, str]], ci: bool, step: str) -> list[tuple[str, str]]:
    """The skips that fail this run: none outside CI; in CI every one but those the step allows."""
    if not ci:
        return []
    allowed = CI_STEP_ALLOWED_SKIPS.get(step, ())
    return [(test, reason) for test, reason in skipped if not any(mark in reason for mark in allowed)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ci = config.flag(os.environ.get("CI", "") or "0")
    refused = disallowed_skips(_skipped, ci, os.environ.get("SHOP_CI_STEP", ""))
    if not refused:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"CI=true: {len(refused)} skipped test(s) fail this run (a skip is a test that did not run):",
             *(f"  {test}: {reason}" for test, reason in refused)]
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
