"""Honest health: NOT_SERVING until the dependencies answer, and again while stopping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from shoplib import log

# How often the continuous probes (Redis) run; a dead store shows within this time.
PROBE_INTERVAL_S = 1.0
# A probe slower than this counts as failed: a dependency that slow is not serving us.
PROBE_TIMEOUT_S = 0.5

Probe = Callable[[], Awaitable[object]]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_logger = log.get("shoplib.process.health")


@dataclass(frozen=True)
class Dependency:
    """A named probe. `continuous` ones are checked for as long as the service runs; the
    others (downstream gRPC services) only gate the start: once up, a service keeps serving
    what it can and answers UNAVAILABLE per call while a downstream is away."""

    name: str
    probe: Probe
    continuous: bool = True


def grpc_health_probe(channel: grpc.aio.Channel) -> Probe:
    stub = health_pb2_grpc.HealthStub(channel)

    async def probe() -> object:
        # types-grpcio-health-checking declares HealthStub without its methods
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=PROBE_TIMEOUT_S)  # type: ignore[attr-defined]
        if reply.status != SERVING:
            raise RuntimeError("not serving")
        return reply

    return probe


# The health service name that liveness probes ask for: SERVING from the start for as long as the
# process answers, whatever its dependencies do. Readiness ("" and each service's name) turns
# NOT_SERVING during an outage, which takes the pod out of the endpoints; liveness must not follow,
# or an outage of Redis would restart every pod. Only a process that cannot answer (a hung event
# loop) fails it. (On shutdown every name turns NOT_SERVING: the pod is going anyway.)
LIVENESS = "liveness"


class HealthMonitor:
    def __init__(self, servicer: health.aio.HealthServicer, services: Sequence[str],
                 dependencies: Sequence[Dependency]) -> None:
        self._servicer, self._services, self._deps = servicer, ["", *services], dependencies
        self._started = False
        self._stopping = False
        self._status: int | None = None

    @property
    def serving(self) -> bool:
        return self._status == SERVING

    async def _set(self, status: int) -> None:
        if status != self._status:
            self._status = status
            _logger.info("health.changed", status=health_pb2.HealthCheckResponse.ServingStatus.Name(status))
        for name in self._services:
            await self._servicer.set(name, status)

    async def _failing(self) -> list[str]:
        deps = [d for d in self._deps if d.continuous or not self._started]
        results = await asyncio.gather(
            *(asyncio.wait_for(d.probe(), PROBE_TIMEOUT_S) for d in deps), return_exceptions=True)
        return [d.name for d, r in zip(deps, results, strict=True) if isinstance(r, BaseException)]

    async def check(self) -> bool:
        """Probe once and publish the result; True when every dependency answered."""
        failing = await self._failing()
        if failing and self._status != NOT_SERVING:
            _logger.warning("health.dependency_down", dependencies=failing)
        self._started = self._started or not failing
        if not self._stopping:
            await self._set(NOT_SERVING if failing else SERVING)
        return not failing

    async def begin(self) -> None:
        """Before the port opens: readiness NOT_SERVING (the library's default for "" would be
        SERVING), liveness SERVING."""
        await self._set(NOT_SERVING)
        await self._servicer.set(LIVENESS, SERVING)

    async def run(self) -> None:
        """Keep probing (after wait_ready): status changes only when a probe result changes."""
        while not self._stopping:
            await self.check()
            await asyncio.sleep(PROBE_INTERVAL_S)

    async def wait_ready(self) -> None:
        while not self._stopping and not await self.check():
            await asyncio.sleep(PROBE_INTERVAL_S / 4)

    async def shutdown(self) -> None:
        self._stopping = True
        await self._servicer.enter_graceful_shutdown()
