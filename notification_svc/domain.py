"""What a notification says. Pure: no I/O."""

from __future__ import annotations

from shop.v1 import types_pb2

from shoplib.rules import ids, money, timestamps
from shoplib.rules.fields import id_violations, order_id_violations, text_violations

KINDS = frozenset({types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT,
                   types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED})

# What each kind says; str.format fills the fields (their values are never read as templates).
TEXTS = {
    types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED: "We received your order {order_id} ({total}).",
    types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT: "Payment of {total} for order {order_id} received. Thank you!",
    types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED: "Payment of {total} for order {order_id} declined: {reason}.",
}


def violations(order_id: str, customer_id: str, kind: types_pb2.NotificationKind.ValueType, reason: str = ""
               ) -> list[tuple[str, str]]:
    found = order_id_violations("order_id", order_id) + id_violations("customer_id", customer_id)
    if kind not in KINDS:
        found.append(("kind", "must be a NOTIFICATION_KIND other than UNSPECIFIED"))
    return found + text_violations("reason", reason)


def compose(order_id: str, customer_id: str, kind: types_pb2.NotificationKind.ValueType, amount: types_pb2.Money,
            reason: str) -> types_pb2.Notification:
    total = money.format_money(amount) if amount.currency_code else "your order"
    text = TEXTS[kind].format(order_id=order_id, total=total, reason=reason)  # only the one it sends
    note = types_pb2.Notification(notification_id=f"ntf_{ids.hex_id()}", order_id=order_id,
                                  customer_id=customer_id, kind=kind, message=text)
    timestamps.stamp(note.create_time)  # in place: a Timestamp passed in would be copied
    return note
