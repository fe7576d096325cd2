"""One way to run a service: aio server, health, reflection, interceptors, graceful stop."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shoplib import faults, log, security
from shoplib.calls import context, traced
from shoplib.calls.interceptors import ContextInterceptor
from shoplib.observability import metrics, tracing
from shoplib.process import gc_tuning
from shoplib.process.health import Dependency, HealthMonitor
from shoplib.process.server_options import SERVER_OPTIONS
from shoplib.process.supervise import Consumer, Supervisor, name_of
from shoplib.rules.bounds import MAX_CONCURRENT_RPCS
from shoplib.security import expiry, serving

# In-flight calls get this long to finish after SIGTERM before they are cancelled.
GRACE_S = 5.0
START_CHECK_RETRY_S = 0.25  # a start check whose dependency does not answer yet is retried this often

_logger = log.get("shoplib.server")
Register = Callable[[grpc.aio.Server], None]
Background = Callable[[], Awaitable[None]]


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
    # Run once the dependencies answer, before anything is consumed: a StartRefused ends the
    # service with its message (a store set up so that our guarantees cannot hold).
    start_checks: Sequence[Callable[[], Awaitable[None]]] = ()
    # /metrics: its port (0: off) and what it reports beyond the counters (shoplib.observability.metrics).
    exposed: metrics.Exposed = field(default_factory=metrics.Exposed)
    # One explicit address: with "localhost", gRPC reports success when only ::1 could be bound
    # (say 127.0.0.1:PORT is held by a TIME-WAIT socket) and IPv4 callers are refused.
    host: str = field(default_factory=lambda: os.environ.get("BIND_HOST", "127.0.0.1"))


def build_server(spec: ServiceSpec) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    # Outermost first: the span (tracing on) sees every answer, authentication's refusals included.
    interceptors = [*traced.server_interceptors(), *serving.interceptors(spec.name), ContextInterceptor()]
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS,
                             maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
    for register in spec.registrations:
        register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*spec.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    bound = serving.listen(server, spec.name, f"{spec.host}:{spec.port}")  # TLS under SECURE=1
    if bound == 0:
        raise SystemExit(f"{spec.name}: cannot listen on {spec.host}:{spec.port}")
    return server, health_servicer, bound


class StartRefused(Exception):
    """A start check found a condition under which the service must not run; says which."""


class Running:
    """A started service: its port and the way to stop it (used by `serve` and by tests).
    Every background job and consumer runs supervised: restarted when it ends, and readiness
    turns NOT_SERVING while one keeps failing."""

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec
        self.server, self.health, self.port = build_server(spec)
        self.supervisor = Supervisor()
        self.monitor = HealthMonitor(self.health, spec.service_names,
                                     [*spec.dependencies, Dependency("tasks", self.supervisor.probe)])
        self._tasks: list[asyncio.Task[None]] = []
        self._consuming: list[asyncio.Task[None]] = []
        self.refused: asyncio.Future[StartRefused] = asyncio.get_running_loop().create_future()
        self.endpoint = self._expose(spec)

    def _expose(self, spec: ServiceSpec) -> metrics.MetricsServer | None:
        exposed = spec.exposed
        if not exposed.port:
            return None
        try:
            endpoint = metrics.MetricsServer(spec.host, exposed.port)
        except OSError as exc:
            raise SystemExit(f"{spec.name}: cannot serve metrics on {spec.host}:{exposed.port}: {exc}") from None
        metrics.report_state(spec.name, lambda: self.monitor.serving, exposed.gate)
        return endpoint

    async def start(self) -> None:
        await self.monitor.begin()
        await self.server.start()
        self._tasks.append(asyncio.create_task(self._become_ready()))
        _logger.info("server.started", port=self.port, services=list(self.spec.service_names),
                     metrics_port=self.endpoint.port if self.endpoint else None)

    async def _become_ready(self) -> None:
        if not await self._start_checks_pass():
            return
        await self.monitor.wait_ready()
        if self.supervisor.stopping:
            return
        keep = self.supervisor.keep
        self._tasks += [asyncio.create_task(keep(name_of(job), job)) for job in self._background()]
        self._consuming = [asyncio.create_task(keep(f"consumer {name_of(c.run)}", c.run)) for c in self.spec.consumers]
        self._tasks.append(asyncio.create_task(self.monitor.run()))
        _logger.info("server.ready")

    def _background(self) -> list[Background]:
        exposed = self.spec.exposed
        watched: list[Background] = [expiry.watch] if security.enabled() else []  # credentials about to expire
        if self.endpoint is None or exposed.client is None or not exposed.groups:
            return [*self.spec.background, *watched]
        return [*self.spec.background, *watched, metrics.group_sampler(exposed.client, exposed.groups)]

    async def _start_checks_pass(self) -> bool:
        """Run the start checks until they could run; False when one refused, or on stopping
        (looked at by flag: a cancelled Redis call can surface as a ConnectionError)."""
        for attempt in itertools.count():
            if self.supervisor.stopping:
                return False
            try:
                return await self._run_start_checks()
            except Exception as exc:  # e.g. Redis not up yet: readiness says so meanwhile
                log_at = _logger.debug if attempt else _logger.warning  # said once, not every retry
                log_at("server.start_check_waiting", error=f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(START_CHECK_RETRY_S)
        return False  # not reached: count() does not end

    async def _run_start_checks(self) -> bool:
        try:
            for check in self.spec.start_checks:
                await check()
        except StartRefused as exc:
            _logger.error("server.start_refused", reason=str(exc))
            await self.monitor.shutdown()
            self.refused.set_result(exc)
            return False
        return True

    async def stop(self, grace: float = GRACE_S) -> None:
        _logger.info("server.stopping", grace_s=grace)
        self.supervisor.stopping = True
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
        if self.endpoint is not None:
            self.endpoint.close()
        _logger.info("server.stopped")


async def serve(spec: ServiceSpec) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    running = Running(spec)
    await running.start()
    gc_tuning.freeze_startup()  # what start-up made is never scanned again; fewer young collections
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.ensure_future(stop.wait())
    either: list[asyncio.Future[Any]] = [stopped, running.refused]  # a stop signal, or a start refused
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    await running.stop()
    if running.refused.done():
        raise SystemExit(f"{spec.name}: refusing to start: {running.refused.result()}")


def run(spec_factory: Callable[[], Awaitable[ServiceSpec]], name: str) -> None:
    """The body of every service's __main__."""
    log.configure(name)
    context.use_reserve(faults.answer_reserve(context.answer_reserve))

    async def main() -> None:
        with tracing.on(name):  # off unless OTEL_EXPORTER_OTLP_ENDPOINT or TRACE_DIR asks for it
            await serve(await spec_factory())

    if os.environ.get("EVENT_LOOP", "uvloop") == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())
