"""The fault tests start and restart Redis and services from a process that is busy with gRPC
(a load running, a test client following orders). Starting a child must work then too."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from shopctl.local_redis.server import LocalRedis, free_port

# Each start forks while calls are in flight; a start that fails one time in ten or more fails
# this test nearly always (0.9^30 < 5%).
STARTS = 30
CALLERS = 4


@pytest.fixture
def grpc_calls_in_flight() -> Iterator[list[int]]:
    """A gRPC server in this process and threads calling it without pause; yields the number of
    calls answered so far (one counter per thread), so that a test can tell calls went on."""
    server = grpc.server(futures.ThreadPoolExecutor(CALLERS))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop, answered = threading.Event(), [0] * CALLERS

    def call(n: int) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not stop.is_set():
                stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                answered[n] += 1

    callers = [threading.Thread(target=call, args=(n,), daemon=True) for n in range(CALLERS)]
    for caller in callers:
        caller.start()
    try:
        yield answered
    finally:
        stop.set()
        for caller in callers:
            caller.join(5)
        server.stop(0)


def test_local_redis_restarts_while_this_process_has_grpc_calls_in_flight(
        tmp_path: Path, grpc_calls_in_flight: list[int]) -> None:
    server = LocalRedis(port=free_port(), data_dir=str(tmp_path))
    failures, before = [], list(grpc_calls_in_flight)
    try:
        for attempt in range(STARTS):
            try:
                server.start()
            except RuntimeError:
                failures.append((attempt, server.process.returncode if server.process else None))
            server.stop()
    finally:
        server.stop()
    assert failures == [], f"redis-server died before it started ((attempt, exit status)): {failures}"
    calling = [n for n, count in enumerate(grpc_calls_in_flight) if count > before[n]]
    assert calling == list(range(CALLERS)), f"only callers {calling} of {CALLERS} kept calling during the starts"
