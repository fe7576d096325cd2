"""Sync mode with the payment service down, then back: fail fast, write nothing half-done, and
complete the order exactly once when the client retries with the same idempotency key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest_asyncio
import redis
import structlog
from shop.v1 import gateway_service_pb2, gateway_service_pb2_grpc, types_pb2

from order_svc.adapters import reservation_key
from payment_svc.adapters import payment_key
from shopctl.local_redis.server import free_port
from shoplib.process.service import Running
from tests.contract.inprocess import (
    STOP_GRACE_S,
    address,
    start_gateway,
    start_notification,
    start_order,
    start_payment,
    wait_serving,
)
from tests.events.helpers import ledger
from tests.support import PAID_LINES, error_info, new_id, retry_delay_s

# The client's deadline while payment is down; UNAVAILABLE must come back well before it.
DEADLINE_S = 3.0
FAIL_FAST_S = 2.0
TRIALS = 2
# Calls a client makes while payment is down (about a second of outage, as in a restart).
CALLS_WHILE_DOWN = 3


class Chain:
    """The four services, payment on a fixed port so that it can be stopped and started again."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url, self.payment_port = redis_url, free_port()
        self.running: dict[str, Running] = {}

    async def start(self) -> None:
        self.running["notification"] = await start_notification(self.redis_url)
        await self.start_payment()
        self.running["order"] = await start_order(self.redis_url, address(self.payment_port),
                                                  self.address("notification"))
        self.running["gateway"] = await start_gateway(self.address("order"))
        for name in ("order", "gateway"):
            await wait_serving(self.address(name))

    def address(self, name: str) -> str:
        return address(self.running[name].port)

    async def start_payment(self) -> None:
        self.running["payment"] = await start_payment(self.redis_url, self.address("notification"),
                                                      port=self.payment_port)
        await wait_serving(address(self.payment_port))

    async def stop(self, name: str) -> None:
        await self.running.pop(name).stop(grace=STOP_GRACE_S)

    async def close(self) -> None:
        for name in ("gateway", "order", "payment", "notification"):
            if name in self.running:
                await self.stop(name)


@pytest_asyncio.fixture(scope="module")
async def chain(redis_url: str) -> AsyncIterator[Chain]:
    running = Chain(redis_url)
    try:
        await running.start()
        yield running
    finally:
        await running.close()


@pytest_asyncio.fixture(scope="module")
async def gateway(chain: Chain) -> AsyncIterator[gateway_service_pb2_grpc.GatewayServiceStub]:
    async with grpc.aio.insecure_channel(chain.address("gateway")) as channel:
        yield gateway_service_pb2_grpc.GatewayServiceStub(channel)


def place() -> gateway_service_pb2.PlaceOrderRequest:
    return gateway_service_pb2.PlaceOrderRequest(idempotency_key=new_id("key"), customer_id=new_id("cust"),
                                                 lines=PAID_LINES, mode=types_pb2.FLOW_MODE_SYNC)


async def unavailable(gateway: gateway_service_pb2_grpc.GatewayServiceStub,
                      request: gateway_service_pb2.PlaceOrderRequest) -> tuple[grpc.aio.AioRpcError, float]:
    started = time.monotonic()
    try:
        reply = await gateway.PlaceOrder(request, timeout=DEADLINE_S)
    except grpc.aio.AioRpcError as exc:
        return exc, time.monotonic() - started
    raise AssertionError(f"PlaceOrder succeeded with payment down: {reply}")


def stored_order_id(client: redis.Redis, idempotency_key: str) -> str | None:
    claimed = client.get(reservation_key(idempotency_key))
    return None if claimed is None else claimed.decode().partition(" ")[2]


async def test_with_payment_down_an_order_is_unavailable_fast_pending_uncharged_and_completed_once_on_retry(
        chain: Chain, gateway: gateway_service_pb2_grpc.GatewayServiceStub, redis_client: redis.Redis) -> None:
    request = place()
    await chain.stop("payment")
    try:
        error, elapsed = await unavailable(gateway, request)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert elapsed < FAIL_FAST_S
        order_id = stored_order_id(redis_client, request.idempotency_key)
        assert order_id is not None  # sync mode stores the order before calling payment
        assert error_info(error).get("order_id") == order_id  # the client learns which order waits
        pending = await gateway.GetOrder(gateway_service_pb2.GetOrderRequest(order_id=order_id), timeout=DEADLINE_S)
        assert pending.order.status == types_pb2.ORDER_STATUS_PENDING
        assert redis_client.get(payment_key(order_id)) is None
        assert redis_client.lrange(ledger(order_id), 0, -1).count(order_id.encode()) == 0
    finally:
        await chain.start_payment()
    await asyncio.sleep(retry_delay_s(error))
    order = (await gateway.PlaceOrder(request, timeout=DEADLINE_S)).order
    assert (order.order_id, order.status) == (order_id, types_pb2.ORDER_STATUS_PAID)
    assert redis_client.lrange(ledger(order_id), 0, -1).count(order_id.encode()) == 1


async def test_with_payment_down_the_unavailable_answer_names_the_payment_service(
        chain: Chain, gateway: gateway_service_pb2_grpc.GatewayServiceStub) -> None:
    """The order service is up; telling the client "order service unavailable" sends operators
    to the wrong service."""
    await chain.stop("payment")
    try:
        error, _ = await unavailable(gateway, place())
    finally:
        await chain.start_payment()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "payment" in (error.details() or ""), error.details()


async def test_with_payment_down_one_place_order_makes_one_create_order_attempt(
        chain: Chain, gateway: gateway_service_pb2_grpc.GatewayServiceStub) -> None:
    """gRPC retries are for calls that did not reach a server: an UNAVAILABLE that the order
    service answered itself, after its own retries, must not be retried again by the gateway."""
    await chain.stop("payment")
    try:
        with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            await unavailable(gateway, place())
    finally:
        await chain.start_payment()
    attempts = [e for e in logs if e.get("rpc") == "/shop.v1.OrderService/CreateOrder" and e["event"] == "rpc.failed"]
    assert len(attempts) == 1


async def test_a_client_that_waits_the_advertised_retry_delay_completes_on_its_first_retry(
        chain: Chain, gateway: gateway_service_pb2_grpc.GatewayServiceStub, redis_client: redis.Redis) -> None:
    """UNAVAILABLE carries RetryInfo; a client that keeps trying during the outage and, once payment
    is back, waits that long and retries once gets its order (several rounds: whether an early
    retry meets the order service's reconnect backoff depends on timing)."""
    for _ in range(TRIALS):
        request = place()
        await chain.stop("payment")
        try:
            for _ in range(CALLS_WHILE_DOWN):  # a client retrying during the outage
                error, _ = await unavailable(gateway, request)
                await asyncio.sleep(0.3)
        finally:
            await chain.start_payment()
        await asyncio.sleep(retry_delay_s(error))
        order = (await gateway.PlaceOrder(request, timeout=DEADLINE_S)).order
        assert order.status == types_pb2.ORDER_STATUS_PAID
        assert redis_client.lrange(ledger(order.order_id), 0, -1).count(order.order_id.encode()) == 1
