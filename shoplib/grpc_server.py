"""One way to run a service: aio server, health, reflection, interceptors, graceful stop."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shoplib import log
from shoplib.health import Dependency, HealthMonitor
from shoplib.interceptors import ContextInterceptor

# In-flight calls get this long to finish after SIGTERM before they are cancelled.
GRACE_S = 5.0
# Requests above this size get RESOURCE_EXHAUSTED from gRPC itself: no order needs more.
MAX_REQUEST_BYTES = 256 * 1024

_logger = log.get("shoplib.server")
Register = Callable[[grpc.aio.Server], None]
Background = Callable[[], Awaitable[None]]


class Consumer(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class ServiceSpec:
    """What a service's bootstrap hands to `serve`."""

    name: str
    port: int
    registrations: Sequence[Register]
    service_names: Sequence[str]
    dependencies: Sequence[Dependency] = ()
    background: Sequence[Background] = ()
    # Stream consumers: started once ready; on stop they finish their batch before the server goes.
    consumers: Sequence[Consumer] = ()
    on_stop: Sequence[Callable[[], Awaitable[None]]] = ()
    # One explicit address: with "localhost", gRPC reports success when only ::1 could be bound
    # (say 127.0.0.1:PORT is held by a TIME-WAIT socket) and IPv4 callers are refused.
    host: str = field(default_factory=lambda: os.environ.get("BIND_HOST", "127.0.0.1"))
    extra: dict[str, object] = field(default_factory=dict)


def build_server(spec: ServiceSpec) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    server = grpc.aio.server(
        interceptors=[ContextInterceptor()],
        options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
    )
    for register in spec.registrations:
        register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*spec.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    bound = server.add_insecure_port(f"{spec.host}:{spec.port}")
    if bound == 0:
        raise SystemExit(f"{spec.name}: cannot listen on {spec.host}:{spec.port}")
    return server, health_servicer, bound


class Running:
    """A started service: its port and the way to stop it (used by `serve` and by tests)."""

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec
        self.server, self.health, self.port = build_server(spec)
        self.monitor = HealthMonitor(self.health, spec.service_names, spec.dependencies)
        self._tasks: list[asyncio.Task[None]] = []
        self._consuming: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.monitor.begin()
        await self.server.start()
        self._tasks.append(asyncio.create_task(self._become_ready()))
        _logger.info("server.started", port=self.port, services=list(self.spec.service_names))

    async def _become_ready(self) -> None:
        await self.monitor.wait_ready()
        self._tasks += [asyncio.create_task(job()) for job in self.spec.background]
        self._consuming = [asyncio.create_task(consumer.run()) for consumer in self.spec.consumers]
        self._tasks.append(asyncio.create_task(self.monitor.run()))
        _logger.info("server.ready")

    async def stop(self, grace: float = GRACE_S) -> None:
        _logger.info("server.stopping", grace_s=grace)
        await self.monitor.shutdown()
        for consumer in self.spec.consumers:
            consumer.stop()
        if self._consuming:
            await asyncio.wait(self._consuming, timeout=grace)
        for task in [*self._tasks, *self._consuming]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._consuming, return_exceptions=True)
        await self.server.stop(grace)
        for hook in self.spec.on_stop:
            await hook()
        _logger.info("server.stopped")


async def serve(spec: ServiceSpec) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    running = Running(spec)
    await running.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()


def run(spec_factory: Callable[[], Awaitable[ServiceSpec]], name: str) -> None:
    """The body of every service's __main__."""
    log.configure(name)

    async def main() -> None:
        await serve(await spec_factory())

    if os.environ.get("EVENT_LOOP", "uvloop") == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())
