"""The four services in this process, each on its own port 0, wired to each other over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shop.v1 import types_pb2

import gateway.bootstrap
import gateway.config
import notification_svc.bootstrap
import notification_svc.config
import order_svc.bootstrap
import order_svc.config
import payment_svc.bootstrap
import payment_svc.config
from shopctl import secure
from shoplib.process.service import Running

# A service whose dependencies answer is ready after one health probe round (well under this).
READY_TIMEOUT_S = 10.0
STOP_GRACE_S = 0.5
INSTANCE = "contract"
_STARTS = itertools.count(1)


def instance() -> str:
    """A consumer name per in-process service: two live ones may not share one (shoplib.streams.lease)."""
    return f"{INSTANCE}{next(_STARTS)}"


def address(port: int) -> str:
    return f"127.0.0.1:{port}"


async def health_status(target: str, service: str = "") -> str:
    """SERVING / NOT_SERVING, or the error code when the server does not answer the check."""
    async with secure.aio_channel(target) as channel:  # TLS as the ops tools under SECURE=1
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1.0)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def wait_serving(target: str, within_s: float = READY_TIMEOUT_S, service: str = "") -> None:
    deadline = time.monotonic() + within_s
    while (status := await health_status(target, service)) != "SERVING":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{target} still {status} after {within_s}s")
        await asyncio.sleep(0.05)


async def start_notification(redis_url: str, port: int = 0) -> Running:
    running = Running(await notification_svc.bootstrap.build(notification_svc.config.Settings(
        port=port, redis_url=redis_url, instance=instance())))
    await running.start()
    return running


async def start_payment(redis_url: str, notification_addr: str, port: int = 0, delay_ms: int = 0,
                        decline_above_minor: int = 100_000) -> Running:
    running = Running(await payment_svc.bootstrap.build(payment_svc.config.Settings(
        port=port, redis_url=redis_url, notification_addr=notification_addr, instance=instance(),
        decline_above_minor=decline_above_minor, delay_ms=delay_ms)))
    await running.start()
    return running


async def start_order(redis_url: str, payment_addr: str, notification_addr: str, port: int = 0) -> Running:
    running = Running(await order_svc.bootstrap.build(order_svc.config.Settings(
        port=port, redis_url=redis_url, payment_addr=payment_addr, notification_addr=notification_addr,
        instance=instance())))
    await running.start()
    return running


async def start_gateway(order_addr: str, port: int = 0) -> Running:
    running = Running(await gateway.bootstrap.build(gateway.config.Settings(
        port=port, order_addr=order_addr, default_mode=types_pb2.FLOW_MODE_SYNC)))
    await running.start()
    return running


@dataclass
class Services:
    notification: Running
    payment: Running
    order: Running
    gateway: Running

    def address(self, name: str) -> str:
        return address(getattr(self, name).port)


@contextlib.asynccontextmanager
async def running_services(redis_url: str, payment_delay_ms: int = 0) -> AsyncIterator[Services]:
    """Start the four services (each waits for its own dependencies) and stop them all after."""
    started: list[Running] = []
    try:
        started.append(await start_notification(redis_url))
        started.append(await start_payment(redis_url, address(started[0].port), delay_ms=payment_delay_ms))
        started.append(await start_order(redis_url, address(started[1].port), address(started[0].port)))
        started.append(await start_gateway(address(started[2].port)))
        for running in started:
            await wait_serving(address(running.port))
        yield Services(*started)
    finally:
        for running in reversed(started):
            await running.stop(grace=STOP_GRACE_S)
