"""The public GatewayService (and the internal services behind it), called only through the
generated stubs, with all four services running in this process over loopback."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import redis
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from shop.v1 import (
    gateway_service_pb2,
    gateway_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
    payment_service_pb2,
    payment_service_pb2_grpc,
    types_pb2,
)

from order_svc import domain
from shoplib.calls import outbound
from shoplib.rules import money
from shoplib.rules.bounds import MAX_REQUEST_BYTES
from tests.events.helpers import ledger
from tests.support import DECLINED_LINES, PAID_LINES, line, new_id

TIMEOUT_S = 5.0
Gateway = gateway_service_pb2_grpc.GatewayServiceStub
Payments = payment_service_pb2_grpc.PaymentServiceStub
Notifications = notification_service_pb2_grpc.NotificationServiceStub


def place(key: str | None = None, customer: str | None = None, lines: tuple[types_pb2.OrderLine, ...] = PAID_LINES,
          mode: int = types_pb2.FLOW_MODE_SYNC) -> gateway_service_pb2.PlaceOrderRequest:
    return gateway_service_pb2.PlaceOrderRequest(idempotency_key=key or new_id("key"),
                                                 customer_id=customer or new_id("cust"), lines=lines, mode=mode)


async def place_order(gateway: Gateway, request: gateway_service_pb2.PlaceOrderRequest) -> types_pb2.Order:
    return (await gateway.PlaceOrder(request, timeout=TIMEOUT_S)).order


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


def charges_in_ledger(client: redis.Redis, order_id: str) -> int:
    return client.lrange(ledger(order_id), 0, -1).count(order_id.encode())


async def notification_kinds(notifications: Notifications, order_id: str) -> list[int]:
    reply = await notifications.ListNotifications(
        notification_service_pb2.ListNotificationsRequest(order_id=order_id), timeout=TIMEOUT_S)
    return [note.kind for note in reply.notifications]


async def payment_of(payments: Payments, order_id: str) -> types_pb2.Payment:
    reply = await payments.GetPayment(payment_service_pb2.GetPaymentRequest(order_id=order_id), timeout=TIMEOUT_S)
    return reply.payment


async def test_an_order_up_to_the_limit_is_paid_charged_once_and_notified_twice(
        gateway_stub: Gateway, payment_stub: Payments, notification_stub: Notifications,
        redis_client: redis.Redis) -> None:
    request = place()
    order = await place_order(gateway_stub, request)
    assert order.status == types_pb2.ORDER_STATUS_PAID
    assert order.total == money.money("EUR", 2 * 1_999 + 250)
    assert (order.customer_id, order.idempotency_key, list(order.lines)) == (
        request.customer_id, request.idempotency_key, list(request.lines))
    payment = await payment_of(payment_stub, order.order_id)
    assert (payment.status, payment.amount) == (types_pb2.PAYMENT_STATUS_SUCCEEDED, order.total)
    assert charges_in_ledger(redis_client, order.order_id) == 1
    assert await notification_kinds(notification_stub, order.order_id) == [
        types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT]


async def test_an_order_of_exactly_one_thousand_euros_is_paid(gateway_stub: Gateway) -> None:
    order = await place_order(gateway_stub, place(lines=(line("sku-a", 4, 25_000),)))
    assert order.total.amount_minor == 100_000
    assert order.status == types_pb2.ORDER_STATUS_PAID


async def test_an_order_above_the_limit_is_declined_charged_once_and_told_so(
        gateway_stub: Gateway, payment_stub: Payments, notification_stub: Notifications,
        redis_client: redis.Redis) -> None:
    order = await place_order(gateway_stub, place(lines=DECLINED_LINES))
    assert order.status == types_pb2.ORDER_STATUS_PAYMENT_DECLINED
    payment = await payment_of(payment_stub, order.order_id)
    assert payment.status == types_pb2.PAYMENT_STATUS_DECLINED
    assert payment.decline_reason
    assert charges_in_ledger(redis_client, order.order_id) == 1
    assert await notification_kinds(notification_stub, order.order_id) == [
        types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED]


async def test_an_unspecified_mode_takes_the_gateway_default(gateway_stub: Gateway) -> None:
    order = await place_order(gateway_stub, place(mode=types_pb2.FLOW_MODE_UNSPECIFIED))
    assert order.mode == types_pb2.FLOW_MODE_SYNC
    assert order.status == types_pb2.ORDER_STATUS_PAID


async def test_get_order_returns_the_stored_order(gateway_stub: Gateway) -> None:
    order = await place_order(gateway_stub, place())
    reply = await gateway_stub.GetOrder(gateway_service_pb2.GetOrderRequest(order_id=order.order_id), timeout=TIMEOUT_S)
    assert reply.order == order


async def test_watching_a_terminal_order_sends_it_once_and_ends(gateway_stub: Gateway) -> None:
    order = await place_order(gateway_stub, place())
    call = gateway_stub.WatchOrder(gateway_service_pb2.WatchOrderRequest(order_id=order.order_id), timeout=TIMEOUT_S)
    seen = [reply.order async for reply in call]
    assert [o.status for o in seen] == [types_pb2.ORDER_STATUS_PAID]
    assert await call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("method", ["GetOrder", "WatchOrder"])
async def test_an_unknown_order_is_not_found(gateway_stub: Gateway, method: str) -> None:
    request_type = {"GetOrder": gateway_service_pb2.GetOrderRequest,
                    "WatchOrder": gateway_service_pb2.WatchOrderRequest}
    call = getattr(gateway_stub, method)(request_type[method](order_id=new_id("ord_missing")), timeout=TIMEOUT_S)
    if method == "WatchOrder":
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            _ = [reply async for reply in call]
        error = raised.value
    else:
        error = await rpc_error(call)
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_an_invalid_order_is_invalid_argument_naming_each_field(gateway_stub: Gateway) -> None:
    bad = place(customer=" ", lines=(line("sku-a", 0, 100, "EUX"), line("", 1, -5, "EUX")))
    error = await rpc_error(gateway_stub.PlaceOrder(bad, timeout=TIMEOUT_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in outbound.field_violations(error)] == [
        "customer_id", "lines[0].quantity", "lines[0].unit_price.currency_code", "lines[1].product_id",
        "lines[1].unit_price.currency_code", "lines[1].unit_price.amount_minor"]
    assert "Traceback" not in (error.details() or "")


@pytest.mark.parametrize("lines", [(), (line("a", currency="EUR"), line("b", currency="USD"))],
                         ids=["no lines", "mixed currencies"])
async def test_an_order_without_lines_or_in_two_currencies_names_the_lines_field(
        gateway_stub: Gateway, lines: tuple[types_pb2.OrderLine, ...]) -> None:
    error = await rpc_error(gateway_stub.PlaceOrder(place(lines=lines), timeout=TIMEOUT_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in outbound.field_violations(error)] == ["lines"]


@pytest.mark.parametrize("mode", [99, -1, 2**31 - 1])
async def test_a_mode_the_schema_does_not_name_is_invalid_argument_naming_mode(gateway_stub: Gateway,
                                                                               mode: int) -> None:
    """An open enum carries any int32 (`"mode": 99` from grpcurl): refused on the field, and the
    gateway's own bookkeeping of the refusal (the metrics' mode label) does not turn it into INTERNAL."""
    request = place()
    request.mode = mode  # type: ignore[assignment]  # what a client of another schema version sends
    error = await rpc_error(gateway_stub.PlaceOrder(request, timeout=TIMEOUT_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert [field for field, _ in outbound.field_violations(error)] == ["mode"]


async def test_an_order_whose_total_exceeds_int64_is_invalid_argument_not_internal(gateway_stub: Gateway) -> None:
    lines = tuple(line(f"sku-{i}", domain.MAX_QUANTITY, money.MAX_AMOUNT_MINOR) for i in range(domain.MAX_LINES))
    error = await rpc_error(gateway_stub.PlaceOrder(place(lines=lines), timeout=TIMEOUT_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in outbound.field_violations(error)] == ["lines"]


async def test_the_same_key_and_request_return_the_same_order_charged_once(
        gateway_stub: Gateway, redis_client: redis.Redis) -> None:
    request = place()
    first = await place_order(gateway_stub, request)
    again = await place_order(gateway_stub, request)
    assert again == first
    assert charges_in_ledger(redis_client, first.order_id) == 1


async def test_concurrent_retries_with_one_key_make_one_order_and_one_charge(
        gateway_stub: Gateway, notification_stub: Notifications, redis_client: redis.Redis) -> None:
    request = place()
    orders = await asyncio.gather(*(place_order(gateway_stub, request) for _ in range(5)))
    assert {o.order_id for o in orders} == {orders[0].order_id}
    assert {o.status for o in orders} == {types_pb2.ORDER_STATUS_PAID}
    assert charges_in_ledger(redis_client, orders[0].order_id) == 1
    assert await notification_kinds(notification_stub, orders[0].order_id) == [
        types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT]


async def test_reusing_a_key_for_a_different_request_is_already_exists(gateway_stub: Gateway) -> None:
    request = place()
    await place_order(gateway_stub, request)
    different = place(key=request.idempotency_key, customer=request.customer_id, lines=(line("sku-other"),))
    error = await rpc_error(gateway_stub.PlaceOrder(different, timeout=TIMEOUT_S))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    [detail] = rpc_status.from_call(error).details  # type: ignore[arg-type]
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert info.reason == "IDEMPOTENCY_KEY_REUSED"


async def test_a_request_over_256_kib_is_resource_exhausted(gateway_stub: Gateway) -> None:
    huge = place(customer="c" * (MAX_REQUEST_BYTES + 1))
    error = await rpc_error(gateway_stub.PlaceOrder(huge, timeout=TIMEOUT_S))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_payment_service_charges_an_order_once_however_often_asked(
        payment_stub: Payments, redis_client: redis.Redis) -> None:
    request = payment_service_pb2.ChargeRequest(order_id=new_id("ord"), customer_id=new_id("cust"),
                                                amount=money.money("EUR", 1_000))
    first = await payment_stub.Charge(request, timeout=TIMEOUT_S)
    second = await payment_stub.Charge(request, timeout=TIMEOUT_S)
    assert second.payment == first.payment
    assert charges_in_ledger(redis_client, request.order_id) == 1


async def test_payment_service_refuses_a_charge_without_order_on_the_order_id_field(payment_stub: Payments) -> None:
    request = payment_service_pb2.ChargeRequest(customer_id="c", amount=money.money("EUR", 1))
    error = await rpc_error(payment_stub.Charge(request, timeout=TIMEOUT_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in outbound.field_violations(error)] == ["order_id"]


async def test_payment_service_has_no_payment_for_an_order_never_charged(payment_stub: Payments) -> None:
    error = await rpc_error(payment_stub.GetPayment(
        payment_service_pb2.GetPaymentRequest(order_id=new_id("ord")), timeout=TIMEOUT_S))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_notification_service_sends_one_notification_per_order_and_kind(
        notification_stub: Notifications) -> None:
    request = notification_service_pb2.SendNotificationRequest(
        order_id=new_id("ord"), customer_id="c", kind=types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED)
    first = await notification_stub.SendNotification(request, timeout=TIMEOUT_S)
    second = await notification_stub.SendNotification(request, timeout=TIMEOUT_S)
    assert second.notification == first.notification
    assert await notification_kinds(notification_stub, request.order_id) == [request.kind]
