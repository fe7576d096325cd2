"""Writes the golden stream entries: one serialized EventEnvelope per event type.

THIS SCRIPT WAS RUN ONCE. The committed *.bin files are the contract with every event ever
published: events are facts that outlive deploys, so today's consumers must decode what
yesterday's producers wrote. NEVER regenerate or edit the committed files; if a consumer stops
decoding one, the consumer is wrong, not the file. A new event type (or a new `type` version)
gets a NEW file, written by a new function added here and run for that file only:

    python -m tests.events.golden.make_golden NEW_FILE_NAME.bin

Everything is fixed (ids, timestamps, amounts), so the bytes do not depend on when it ran.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from shop.v1 import events_pb2, types_pb2

HERE = Path(__file__).parent
ORDER_ID = "ord_0123456789abcdef01234567"
CUSTOMER_ID = "cust-golden"
WHEN = timestamp_pb2.Timestamp(seconds=1_767_225_600)  # 2026-01-01T00:00:00Z
EUR = types_pb2.Money(currency_code="EUR", amount_minor=4_248)


def _envelope(event_id: str, source: str, type_name: str, payload: Message) -> bytes:
    data = any_pb2.Any()
    data.Pack(payload)
    return events_pb2.EventEnvelope(
        id=event_id, source=source, specversion="1.0", type=type_name, time=WHEN, subject=ORDER_ID,
        datacontenttype="application/protobuf", dataschema=data.type_url,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        correlation_id="c0ffee00c0ffee00c0ffee00c0ffee00", data=data).SerializeToString()


def _order(status: int) -> types_pb2.Order:
    return types_pb2.Order(
        order_id=ORDER_ID, customer_id=CUSTOMER_ID, total=EUR, status=status, mode=types_pb2.FLOW_MODE_EVENTS,
        lines=[types_pb2.OrderLine(product_id="sku-book", quantity=2, unit_price=types_pb2.Money(
            currency_code="EUR", amount_minor=1_999)), types_pb2.OrderLine(
            product_id="sku-pen", quantity=1, unit_price=types_pb2.Money(currency_code="EUR", amount_minor=250))],
        create_time=WHEN, update_time=WHEN, idempotency_key="key-golden")


def _payment(status: int, reason: str = "") -> types_pb2.Payment:
    return types_pb2.Payment(payment_id="pay_0123456789abcdef01234567", order_id=ORDER_ID, customer_id=CUSTOMER_ID,
                             amount=EUR, status=status, decline_reason=reason, create_time=WHEN)


def order_placed() -> bytes:
    return _envelope("00000000-0000-4000-8000-000000000001", "/shop/order-service", "shop.order.placed.v1",
                     events_pb2.OrderPlaced(order=_order(types_pb2.ORDER_STATUS_PENDING)))


def payment_succeeded() -> bytes:
    return _envelope("00000000-0000-4000-8000-000000000002", "/shop/payment-service", "shop.payment.succeeded.v1",
                     events_pb2.PaymentSucceeded(payment=_payment(types_pb2.PAYMENT_STATUS_SUCCEEDED)))


def payment_declined() -> bytes:
    return _envelope("00000000-0000-4000-8000-000000000003", "/shop/payment-service", "shop.payment.declined.v1",
                     events_pb2.PaymentDeclined(payment=_payment(
                         types_pb2.PAYMENT_STATUS_DECLINED, "amount above the limit of 100000 minor units")))


def notification_sent() -> bytes:
    return _envelope("00000000-0000-4000-8000-000000000004", "/shop/notification-service",
                     "shop.notification.sent.v1", events_pb2.NotificationSent(notification=types_pb2.Notification(
                         notification_id="ntf_0123456789abcdef01234567", order_id=ORDER_ID, customer_id=CUSTOMER_ID,
                         kind=types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT,
                         message=f"Payment of 42.48 EUR for order {ORDER_ID} received. Thank you!", create_time=WHEN)))


FILES: dict[str, Callable[[], bytes]] = {
    "order_placed.v1.bin": order_placed,
    "payment_succeeded.v1.bin": payment_succeeded,
    "payment_declined.v1.bin": payment_declined,
    "notification_sent.v1.bin": notification_sent,
}


def main(names: list[str]) -> None:
    for name in names:
        target = HERE / name
        if target.exists():
            raise SystemExit(f"{target} exists: golden files are never regenerated")
        target.write_bytes(FILES[name]())
        print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
