"""The whole system as real processes: a Redis (private unless REDIS_URL is set) and four services."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shopctl import secure
from shopctl.local_redis.cluster import LocalCluster
from shopctl.local_redis.server import LocalRedis, free_port, python_module_command
from shoplib import config

# Start order matters only for readability: each service waits for its own dependencies.
SERVICES = ("notification", "payment", "order", "gateway")
MODULES = {"gateway": "gateway", "order": "order_svc", "payment": "payment_svc", "notification": "notification_svc"}
DEFAULT_PORTS = {"gateway": 50051, "order": 50052, "payment": 50053, "notification": 50054}
DEFAULT_METRICS_PORTS = {"gateway": 9101, "order": 9102, "payment": 9103, "notification": 9104}
# A cold start (Python imports, gRPC, Redis ping) takes ~1 s per service on 2 cores.
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# Services started together with the same settings often fail together, a few hundred ms apart:
# after the first exit, wait this long so that one report names all of them, not only the quickest.
SETTLE_S = 0.5
# One health call while the stack starts: short, so that an exit elsewhere is noticed within about this long.
START_CHECK_TIMEOUT_S = 0.2
START_POLL_S = 0.05
LOG_TAIL_LINES = 10  # of a service's log, in the report of its exit: its error and what led to it
# Health polling of a (re)starting service: reconnect every 50 ms rather than after gRPC's 1 s
# first backoff, so the moment it is SERVING is known to within a poll.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                  ("grpc.max_reconnect_backoff_ms", 100)]
HEALTH_POLL_S = 0.02


class StackError(Exception):
    """A service of the stack exited, or did not start in time; the message is what the user reads."""


def service_of(name: str) -> str:
    """The service a process name runs: `order` for `order`, and for `order-2`, its second instance."""
    return name.split("-")[0]


def exit_status(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def fixed_port(name: str) -> int:
    """The default port, unless GATEWAY_PORT, ORDER_PORT... say otherwise (`make up` beside another stack)."""
    return config.port(f"{name.upper()}_PORT", DEFAULT_PORTS[name])


def fixed_metrics_port(name: str) -> int:
    """The default /metrics port, unless GATEWAY_METRICS_PORT, ORDER_METRICS_PORT... say otherwise (0: off)."""
    return config.port(f"{name.upper()}_METRICS_PORT", DEFAULT_METRICS_PORTS[name])


def wait_serving(address: str, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    with secure.sync_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                # types-grpcio-health-checking declares HealthStub without its methods
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)  # type: ignore[attr-defined]
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
    # /metrics on free ports too; without it a free-port stack serves none (stacks started side by
    # side, as the tests do, would fight over fixed ones). Fixed-port stacks use 9101-9104 or *_METRICS_PORT.
    metrics: bool = False
    log_dir: Path | None = None  # None: service logs go to this terminal
    env: dict[str, str] = field(default_factory=dict)
    redis: LocalRedis | None = None
    cluster: LocalCluster | None = None  # a private Redis Cluster instead, under REDIS_CLUSTER=1
    ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)  # 0: that service serves no /metrics
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = {name: free_port() if self.free_ports else fixed_port(name) for name in SERVICES}
        self.metrics_ports = {name: self._metrics_port(name) for name in SERVICES}
        self.redis_url = os.environ.get("REDIS_URL", "")

    def _metrics_port(self, name: str) -> int:
        if not self.free_ports:
            return fixed_metrics_port(name)
        return free_port() if self.metrics else 0

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def reach(self, name: str) -> str:
        """Where this process dials a service: its address, unless a subclass runs the services
        where we cannot dial them directly (shopctl.chaos.hosted: hosts in their own namespaces)."""
        return self.address(name)

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def service_env(self, name: str) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "REDIS_URL": self.redis_url,
               "ORDER_SERVICE_ADDR": self.address("order"), "PAYMENT_SERVICE_ADDR": self.address("payment"),
               "NOTIFICATION_SERVICE_ADDR": self.address("notification"),
               **{f"{n.upper()}_METRICS_PORT": str(p) for n, p in self.metrics_ports.items()},
               **secure.service_env(name, self.redis), **self.env}
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
        if not self.redis_url and self.clustered():
            self.cluster = LocalCluster().start()
            self.redis_url = self.cluster.url
        if not self.redis_url:
            self.redis = secure.local_redis().start()  # with ACL users under SECURE=1
            self.redis_url = self.redis.url
        for name in SERVICES:
            self.start_service(name, wait=False)
        self.wait_serving(SERVICES)

    def start_service(self, name: str, wait: bool = True) -> None:
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_path(name), "ab")
        self.processes[name] = subprocess.Popen(
            python_module_command(MODULES[service_of(name)]), env=self.service_env(name), stdout=out, stderr=out)
        if out is not None:
            out.close()  # the child has its own copy
        if wait:
            self.wait_serving([name])

    def wait_serving(self, names: Sequence[str], timeout: float = READY_TIMEOUT_S) -> None:
        """Poll these services' health until all are SERVING; raise StackError as soon as one of
        their processes exits, or at the timeout."""
        deadline = time.monotonic() + timeout
        channels = {name: secure.sync_channel(self.reach(name), FAST_RECONNECT) for name in names}
        try:
            pending = [name for name in names if not self._serving(names, channels[name])]
            while pending:
                if time.monotonic() > deadline:
                    raise StackError(self._not_serving_report(pending, timeout))
                time.sleep(START_POLL_S)
                pending = [name for name in pending if not self._serving(names, channels[name])]
        finally:
            for channel in channels.values():
                channel.close()

    def _serving(self, watched: Sequence[str], channel: grpc.Channel) -> bool:
        self.check_running("during start", watched)  # before each call: an exit is noticed within one call
        try:
            # types-grpcio-health-checking declares HealthStub without its methods
            reply = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(), timeout=START_CHECK_TIMEOUT_S)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def check_running(self, when: str, names: Sequence[str] = SERVICES) -> None:
        """Raise StackError naming each of these services whose process has exited, with the end of
        its output (a service stopped through stop_service is no longer watched)."""
        watched = {name: process for name, process in self.processes.items() if name in names}
        if all(process.poll() is None for process in watched.values()):
            return
        time.sleep(SETTLE_S)
        exited = {name: code for name, process in watched.items() if (code := process.poll()) is not None}
        header = ", ".join(f"{name} ({exit_status(code)})" for name, code in exited.items())
        alive = [name for name, process in self.processes.items() if process.poll() is None]
        stopping = f"; stopping {', '.join(alive)}" if alive else ""
        raise StackError(f"{header} exited {when}{stopping}.\n{self._output_of(list(exited))}")

    def _not_serving_report(self, pending: list[str], timeout: float) -> str:
        return (f"{', '.join(pending)} still running but not SERVING after {timeout:.0f}s; stopping the stack.\n"
                + self._output_of(pending))

    def _output_of(self, names: list[str]) -> str:
        """Where the user reads what these services said: the end of each log, or the terminal."""
        if self.log_dir is None:
            return "Their own error lines are above, in this terminal's output."
        return "\n".join(self._log_tail(name) for name in names)

    def log_path(self, name: str) -> Path:
        assert self.log_dir is not None
        return self.log_dir / f"{name}.log"

    def _log_tail(self, name: str) -> str:
        path = self.log_path(name)
        if not path.is_file():  # a subclass that spawns its own way may name its logs otherwise
            return f"{name}: its log is in {self.log_dir}/"
        lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return f"{name}: last lines of {path}:\n" + "\n".join(f"    {line}" for line in lines or ["(empty)"])

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
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def clustered(self) -> bool:
        """REDIS_CLUSTER=1 in the stack's environment or ours: the services use a cluster client."""
        return config.flag(self.env.get("REDIS_CLUSTER") or os.environ.get("REDIS_CLUSTER") or "0")


async def until_serving(address: str, process: subprocess.Popen[bytes], what: str,
                        limit_s: float = READY_TIMEOUT_S) -> None:
    """Poll a service's health until SERVING (from async code); fail naming it, and its exit code,
    if its process died or it took longer than `limit_s`."""
    deadline = time.monotonic() + limit_s
    async with secure.aio_channel(address, FAST_RECONNECT) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and process.poll() is None:
            try:
                # types-grpcio-health-checking declares HealthStub without its methods
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)  # type: ignore[attr-defined]
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(HEALTH_POLL_S)
    raise RuntimeError(f"{what} did not become SERVING (exit code {process.poll()})")
