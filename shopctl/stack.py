"""The whole system as real processes: a Redis (private unless REDIS_URL is set) and four services."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shoplib.redis_server import LocalRedis, free_port, python_module_command

# Start order matters only for readability: each service waits for its own dependencies.
SERVICES = ("notification", "payment", "order", "gateway")
MODULES = {"gateway": "gateway", "order": "order_svc", "payment": "payment_svc", "notification": "notification_svc"}
DEFAULT_PORTS = {"gateway": 50051, "order": 50052, "payment": 50053, "notification": 50054}
# A cold start (Python imports, gRPC, Redis ping) takes ~1 s per service on 2 cores.
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
def wait_serving(address: str, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"{address} not SERVING after {timeout}s")


@dataclass
class Stack:
    """Start with `with Stack(...) as stack:`; every process is stopped on exit."""

    free_ports: bool = True
    log_dir: Path | None = None  # None: service logs go to this terminal
    env: dict[str, str] = field(default_factory=dict)
    redis: LocalRedis | None = None
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = {name: free_port() if self.free_ports else DEFAULT_PORTS[name] for name in SERVICES}
        self.redis_url = os.environ.get("REDIS_URL", "")

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def service_env(self, name: str) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "REDIS_URL": self.redis_url,
               "ORDER_SERVICE_ADDR": self.address("order"), "PAYMENT_SERVICE_ADDR": self.address("payment"),
               "NOTIFICATION_SERVICE_ADDR": self.address("notification"), **self.env}
        env.update({f"{n.upper()}_PORT": str(p) for n, p in self.ports.items()})
        return env

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if not self.redis_url:
            self.redis = LocalRedis().start()
            self.redis_url = self.redis.url
        for name in SERVICES:
            self.start_service(name, wait=False)
        for name in SERVICES:
            wait_serving(self.address(name))

    def start_service(self, name: str, wait: bool = True) -> None:
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            python_module_command(MODULES[name]), env=self.service_env(name), stdout=out, stderr=out)
        if out is not None:
            out.close()  # the child has its own copy
        if wait:
            wait_serving(self.address(name))

    def signal_service(self, name: str, sig: signal.Signals) -> None:
        self.processes[name].send_signal(sig)

    def stop_service(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        for name in reversed(SERVICES):
            self.stop_service(name)
        if self.redis is not None:
            self.redis.close()
            self.redis = None


# Health polling of a (re)starting service: reconnect every 50 ms rather than after gRPC's 1 s
# first backoff, so the moment it is SERVING is known to within a poll.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                  ("grpc.max_reconnect_backoff_ms", 100)]
HEALTH_POLL_S = 0.02


async def until_serving(address: str, process: subprocess.Popen[bytes], what: str,
                        limit_s: float = READY_TIMEOUT_S) -> None:
    """Poll a service's health until SERVING (from async code); fail naming it, and its exit code,
    if its process died or it took longer than `limit_s`."""
    deadline = time.monotonic() + limit_s
    async with grpc.aio.insecure_channel(address, options=FAST_RECONNECT) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and process.poll() is None:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(HEALTH_POLL_S)
    raise RuntimeError(f"{what} did not become SERVING (exit code {process.poll()})")
