"""The whole stack as real processes (shopctl.stack.Stack) on one real Redis, in sync mode:
orders paid, declined, refused and retried; then the payment service goes down and comes back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from shop.v1 import (
    gateway_service_pb2,
    gateway_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
    payment_service_pb2,
    payment_service_pb2_grpc,
    types_pb2,
)

from order_svc.adapters import reservation_key
from payment_svc.adapters import payment_key
from shopctl.stack import Stack
from shoplib.calls import outbound
from tests.events.helpers import ledger
from tests.support import DECLINED_LINES, PAID_LINES, error_info, line, new_id, retry_delay_s

pytestmark = pytest.mark.e2e

TIMEOUT_S = 5.0
# The client's deadline while payment is down; UNAVAILABLE must come back well before it.
DOWN_DEADLINE_S = 3.0
FAIL_FAST_S = 2.0


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module (start-up is the slow part); it uses the session's Redis."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIS_URL", redis_url)  # read once, when the Stack is built
        running = Stack(log_dir=Path(tmp_path_factory.mktemp("stack-logs")))
    with running:
        yield running


@pytest.fixture(scope="module")
def channels(stack: Stack) -> Iterator[dict[str, grpc.Channel]]:
    opened = {name: grpc.insecure_channel(stack.address(name)) for name in ("gateway", "payment", "notification")}
    yield opened
    for channel in opened.values():
        channel.close()


@pytest.fixture
def gateway(channels: dict[str, grpc.Channel]) -> gateway_service_pb2_grpc.GatewayServiceStub:
    return gateway_service_pb2_grpc.GatewayServiceStub(channels["gateway"])


def place(key: str | None = None, lines: tuple[types_pb2.OrderLine, ...] = PAID_LINES
          ) -> gateway_service_pb2.PlaceOrderRequest:
    return gateway_service_pb2.PlaceOrderRequest(idempotency_key=key or new_id("key"), customer_id=new_id("cust"),
                                                 lines=lines, mode=types_pb2.FLOW_MODE_SYNC)


def charges(client: redis.Redis, order_id: str) -> int:
    return client.lrange(ledger(order_id), 0, -1).count(order_id.encode())


def payment_of(channels: dict[str, grpc.Channel], order_id: str) -> types_pb2.Payment:
    stub = payment_service_pb2_grpc.PaymentServiceStub(channels["payment"])
    # wait_for_ready: this test's own channel may still be reconnecting after payment's restart
    return stub.GetPayment(payment_service_pb2.GetPaymentRequest(order_id=order_id), timeout=TIMEOUT_S,
                           wait_for_ready=True).payment


def notification_kinds(channels: dict[str, grpc.Channel], order_id: str) -> list[int]:
    stub = notification_service_pb2_grpc.NotificationServiceStub(channels["notification"])
    reply = stub.ListNotifications(notification_service_pb2.ListNotificationsRequest(order_id=order_id),
                                   timeout=TIMEOUT_S)
    return [note.kind for note in reply.notifications]


def test_an_order_within_the_limit_is_paid_once_and_notified_twice(
        gateway: gateway_service_pb2_grpc.GatewayServiceStub, channels: dict[str, grpc.Channel],
        redis_client: redis.Redis) -> None:
    order = gateway.PlaceOrder(place(), timeout=TIMEOUT_S).order
    assert order.status == types_pb2.ORDER_STATUS_PAID
    assert payment_of(channels, order.order_id).status == types_pb2.PAYMENT_STATUS_SUCCEEDED
    assert charges(redis_client, order.order_id) == 1
    assert notification_kinds(channels, order.order_id) == [
        types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT]
    fetched = gateway.GetOrder(gateway_service_pb2.GetOrderRequest(order_id=order.order_id), timeout=TIMEOUT_S)
    assert fetched.order == order


def test_an_order_above_the_limit_is_declined_once_and_told_so(
        gateway: gateway_service_pb2_grpc.GatewayServiceStub, channels: dict[str, grpc.Channel],
        redis_client: redis.Redis) -> None:
    order = gateway.PlaceOrder(place(lines=DECLINED_LINES), timeout=TIMEOUT_S).order
    assert order.status == types_pb2.ORDER_STATUS_PAYMENT_DECLINED
    assert payment_of(channels, order.order_id).status == types_pb2.PAYMENT_STATUS_DECLINED
    assert charges(redis_client, order.order_id) == 1
    assert notification_kinds(channels, order.order_id) == [
        types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED]


def test_an_invalid_order_is_refused_with_its_field_violations_and_stores_nothing(
        gateway: gateway_service_pb2_grpc.GatewayServiceStub, redis_client: redis.Redis) -> None:
    request = place(lines=(line("sku-a", 0), line("", 1, 100, "EUX")))
    with pytest.raises(grpc.RpcError) as raised:
        gateway.PlaceOrder(request, timeout=TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in outbound.field_violations(raised.value)] == [  # type: ignore[arg-type]
        "lines[0].quantity", "lines[1].product_id", "lines[1].unit_price.currency_code", "lines"]
    assert redis_client.get(reservation_key(request.idempotency_key)) is None


def test_a_retried_order_returns_the_same_order_and_charges_once_and_a_reused_key_is_refused(
        gateway: gateway_service_pb2_grpc.GatewayServiceStub, channels: dict[str, grpc.Channel],
        redis_client: redis.Redis) -> None:
    request = place()
    first = gateway.PlaceOrder(request, timeout=TIMEOUT_S).order
    again = gateway.PlaceOrder(request, timeout=TIMEOUT_S).order
    assert again == first
    assert charges(redis_client, first.order_id) == 1
    assert len(notification_kinds(channels, first.order_id)) == 2
    other = place(key=request.idempotency_key, lines=DECLINED_LINES)
    with pytest.raises(grpc.RpcError) as raised:
        gateway.PlaceOrder(other, timeout=TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS


def stored_order_id(client: redis.Redis, idempotency_key: str) -> str | None:
    claimed = client.get(reservation_key(idempotency_key))
    return None if claimed is None else claimed.decode().partition(" ")[2]


def test_with_payment_down_an_order_fails_fast_half_done_nowhere_and_a_retry_completes_it_once(
        stack: Stack, gateway: gateway_service_pb2_grpc.GatewayServiceStub, channels: dict[str, grpc.Channel],
        redis_client: redis.Redis) -> None:
    request = place()
    stack.stop_service("payment")
    try:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            gateway.PlaceOrder(request, timeout=DOWN_DEADLINE_S)
        elapsed = time.monotonic() - started
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert elapsed < FAIL_FAST_S, f"UNAVAILABLE took {elapsed:.2f}s"
        assert "payment" in (raised.value.details() or "")
        order_id = stored_order_id(redis_client, request.idempotency_key)
        assert order_id is not None  # sync mode stores the order first: it waits, PENDING and uncharged
        assert error_info(raised.value).get("order_id") == order_id
        pending = gateway.GetOrder(gateway_service_pb2.GetOrderRequest(order_id=order_id), timeout=TIMEOUT_S)
        assert pending.order.status == types_pb2.ORDER_STATUS_PENDING
        assert redis_client.get(payment_key(order_id)) is None
        assert charges(redis_client, order_id) == 0
    finally:
        stack.start_service("payment")
    time.sleep(retry_delay_s(raised.value))  # as the answer asked
    order = gateway.PlaceOrder(request, timeout=TIMEOUT_S).order
    assert (order.order_id, order.status) == (order_id, types_pb2.ORDER_STATUS_PAID)
    assert charges(redis_client, order.order_id) == 1
    assert payment_of(channels, order.order_id).status == types_pb2.PAYMENT_STATUS_SUCCEEDED
    assert notification_kinds(channels, order.order_id) == [
        types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT]
