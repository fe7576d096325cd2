"""Honest health: NOT_SERVING until the dependencies answer, SERVING when ready, NOT_SERVING on stop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shop.v1 import payment_service_pb2, payment_service_pb2_grpc, types_pb2

from payment_svc import handlers as payment_handlers
from shopctl.local_redis.server import free_port
from shoplib.process.health import LIVENESS
from shoplib.rules import money
from tests.contract.inprocess import (
    READY_TIMEOUT_S,
    STOP_GRACE_S,
    Services,
    address,
    health_status,
    start_notification,
    start_order,
    start_payment,
    wait_serving,
)
from tests.events.helpers import async_wait_until
from tests.support import new_id

ORDER_SERVICE = "shop.v1.OrderService"
PAYMENT_SERVICE = "shop.v1.PaymentService"
NOTIFICATION_SERVICE = "shop.v1.NotificationService"
# Long enough to see several probe rounds (one every 0.25 s while a service is not ready).
OBSERVE_S = 1.0
# Longer than a service takes to notice a dependency came up (it re-probes every 0.25 s).
PROBE_ROUND_S = 1.5


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """An address that accepts TCP connections and never answers: a hung or half-started peer."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield address(sock.getsockname()[1])


async def statuses_over(target: str, seconds: float, service: str = "") -> set[str]:
    seen, deadline = set(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(await health_status(target, service))
        await asyncio.sleep(0.05)
    return seen


async def test_order_is_not_serving_while_payment_is_down_and_serving_once_it_is_up(
        services: Services, redis_url: str) -> None:
    payment_port = free_port()
    order = await start_order(redis_url, address(payment_port), services.address("notification"))
    payment = None
    try:
        target = address(order.port)
        assert await statuses_over(target, OBSERVE_S) == {"NOT_SERVING"}
        assert await statuses_over(target, 0.3, ORDER_SERVICE) == {"NOT_SERVING"}
        payment = await start_payment(redis_url, services.address("notification"), port=payment_port)
        await wait_serving(target, within_s=5.0)
        assert await health_status(target, ORDER_SERVICE) == "SERVING"
    finally:
        await order.stop(grace=STOP_GRACE_S)
        if payment is not None:
            await payment.stop(grace=STOP_GRACE_S)


async def test_liveness_stays_serving_while_a_dependency_is_down_and_readiness_is_not(
        services: Services, redis_url: str) -> None:
    """What the kubelet's probes read: a dependency outage makes the pod unready, never unlive."""
    order = await start_order(redis_url, address(free_port()), services.address("notification"))  # no payment
    try:
        target = address(order.port)
        assert await statuses_over(target, OBSERVE_S, LIVENESS) == {"SERVING"}
        assert await statuses_over(target, 0.3) == {"NOT_SERVING"}  # control: readiness does see it
    finally:
        await order.stop(grace=STOP_GRACE_S)


async def test_health_is_not_serving_while_the_first_dependency_probe_is_still_running(
        services: Services, redis_url: str) -> None:
    """Right after start, before any probe has answered, the server answers NOT_SERVING (neither
    SERVING nor no answer at all)."""
    with silent_listener() as hung_payment:
        order = await start_order(redis_url, hung_payment, services.address("notification"))
        try:
            assert await health_status(address(order.port)) == "NOT_SERVING"
        finally:
            await order.stop(grace=STOP_GRACE_S)


async def test_health_does_not_flap_to_not_serving_right_after_becoming_ready(
        services: Services, redis_url: str) -> None:
    """Once the dependencies answered and the service said SERVING, it stays SERVING while they do."""
    payment_port = free_port()
    order = await start_order(redis_url, address(payment_port), services.address("notification"))
    payment = None
    try:
        async with grpc.aio.insecure_channel(address(order.port)) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=10)
            while (await watch.read()).status != health_pb2.HealthCheckResponse.NOT_SERVING:
                pass  # waiting on the payment dependency
            payment = await start_payment(redis_url, services.address("notification"), port=payment_port)
            seen = []
            with contextlib.suppress(TimeoutError):
                while True:
                    reply = await asyncio.wait_for(watch.read(), timeout=PROBE_ROUND_S)
                    seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
            watch.cancel()
        assert seen == ["SERVING"]
    finally:
        await order.stop(grace=STOP_GRACE_S)
        if payment is not None:
            await payment.stop(grace=STOP_GRACE_S)


async def test_a_service_is_not_serving_once_its_shutdown_begins(redis_url: str) -> None:
    notification = await start_notification(redis_url)
    target = address(notification.port)
    try:
        await wait_serving(target, service=NOTIFICATION_SERVICE)
        await notification.monitor.shutdown()
        assert await health_status(target) == "NOT_SERVING"
        assert await health_status(target, NOTIFICATION_SERVICE) == "NOT_SERVING"
    finally:
        await notification.stop(grace=STOP_GRACE_S)


def charges_entered(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The order ids whose charge has entered the payment handler (and so is in flight on the server)."""
    entered: set[str] = set()
    real = payment_handlers.charge

    async def charge(cmd: payment_service_pb2.ChargeRequest, *args: Any, **kwargs: Any) -> types_pb2.Payment:
        entered.add(cmd.order_id)
        return await real(cmd, *args, **kwargs)

    monkeypatch.setattr(payment_handlers, "charge", charge)
    return entered


async def test_stopping_turns_health_watchers_to_not_serving_and_lets_in_flight_calls_finish(
        services: Services, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    entered, order_id = charges_entered(monkeypatch), new_id("ord")
    with structlog.testing.capture_logs() as logs:
        payment = await start_payment(redis_url, services.address("notification"), delay_ms=800)
        target = address(payment.port)
        await wait_serving(target, service=PAYMENT_SERVICE)
        # past start-up (health probes running, consumers started), so what the watch sees next is the stop
        await async_wait_until(lambda: any(e["event"] == "server.ready" for e in logs), READY_TIMEOUT_S,
                               "the payment service's start-up to end")
    async with grpc.aio.insecure_channel(target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=10)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        charge = asyncio.ensure_future(payment_service_pb2_grpc.PaymentServiceStub(channel).Charge(
            payment_service_pb2.ChargeRequest(order_id=order_id, customer_id="c",
                                              amount=money.money("EUR", 100)), timeout=10))
        # in flight: in the handler, sleeping its injected delay
        await async_wait_until(lambda: order_id in entered, READY_TIMEOUT_S, "the charge to reach the handler")
        stopping = asyncio.create_task(payment.stop(grace=3.0))
        assert (await asyncio.wait_for(watch.read(), 2.0)).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        reply = await charge
        assert reply.payment.status == types_pb2.PAYMENT_STATUS_SUCCEEDED
        await stopping
