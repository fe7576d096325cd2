"""Order rules: what a valid order is, its total, its identity. Pure: no I/O."""

from __future__ import annotations

import hashlib
import uuid

from shop.v1 import types_pb2

from shoplib.rules import money, timestamps
from shoplib.rules.bounds import MAX_AMOUNT_MINOR, MAX_LINES, MAX_QUANTITY
from shoplib.rules.fields import id_violations
from shoplib.store import partitions

TERMINAL = frozenset({types_pb2.ORDER_STATUS_PAID, types_pb2.ORDER_STATUS_PAYMENT_DECLINED})
MODES = frozenset({types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS})


def _line_violations(index: int, line: types_pb2.OrderLine) -> list[tuple[str, str]]:
    field = f"lines[{index}]"
    found = id_violations(f"{field}.product_id", line.product_id)
    if not 1 <= line.quantity <= MAX_QUANTITY:
        found.append((f"{field}.quantity", f"must be between 1 and {MAX_QUANTITY}"))
    if not line.HasField("unit_price"):
        return [*found, (f"{field}.unit_price", "is required")]
    return found + money.violations(f"{field}.unit_price", line.unit_price)


def violations(idempotency_key: str, customer_id: str, lines: list[types_pb2.OrderLine],
             mode: types_pb2.FlowMode.ValueType) -> list[tuple[str, str]]:
    """Every field violation of an order request; empty when the order is valid."""
    found = id_violations("idempotency_key", idempotency_key) + id_violations("customer_id", customer_id)
    found += _lines_violations(lines)
    if mode not in MODES:
        found.append(("mode", "must be FLOW_MODE_SYNC or FLOW_MODE_EVENTS"))
    if not found and _sum_minor(lines) > MAX_AMOUNT_MINOR:
        found.append(("lines", f"order total must be at most {MAX_AMOUNT_MINOR} minor units"))
    return found


def _lines_violations(lines: list[types_pb2.OrderLine]) -> list[tuple[str, str]]:
    if not lines:
        return [("lines", "must contain at least one line")]
    if len(lines) > MAX_LINES:
        return [("lines", f"must contain at most {MAX_LINES} lines")]
    found = [v for index, line in enumerate(lines) for v in _line_violations(index, line)]
    if len(currencies := {line.unit_price.currency_code for line in lines}) > 1:
        shown = sorted(c[:money.ECHO_CHARS] for c in currencies)[:5]
        found.append(("lines", f"must share one currency, got {len(currencies)}: {shown}"))
    return found


def _sum_minor(lines: list[types_pb2.OrderLine]) -> int:
    """Exact (Python int): may exceed int64 before validation refuses it."""
    return sum(line.quantity * line.unit_price.amount_minor for line in lines)


def total_of(lines: list[types_pb2.OrderLine]) -> types_pb2.Money:
    """The total of valid lines (validated: fits comfortably in int64)."""
    return money.money(lines[0].unit_price.currency_code, _sum_minor(lines))


def fingerprint(customer_id: str, lines: list[types_pb2.OrderLine], mode: types_pb2.FlowMode.ValueType) -> str:
    """Identifies what was asked, so a reused idempotency key with another request is caught."""
    digest = hashlib.sha256(f"{customer_id}\x00{mode}".encode())
    for line in lines:
        digest.update(line.SerializeToString(deterministic=True))
    return digest.hexdigest()[:32]


def new_order(idempotency_key: str, customer_id: str, lines: list[types_pb2.OrderLine],
              mode: types_pb2.FlowMode.ValueType, traceparent: str = "") -> types_pb2.Order:
    """A PENDING order; `traceparent`: the W3C trace context of the request placing it, kept so
    that work done for it later continues its trace."""
    now = timestamps.now()
    order_id = partitions.order_id(partitions.partition_of(idempotency_key), uuid.uuid4().hex[:24])
    return types_pb2.Order(
        order_id=order_id, customer_id=customer_id, lines=lines,
        total=total_of(lines), status=types_pb2.ORDER_STATUS_PENDING, mode=mode,
        create_time=now, update_time=now, idempotency_key=idempotency_key, traceparent=traceparent)


def settle(order: types_pb2.Order, payment: types_pb2.Payment) -> types_pb2.Order:
    """The order once its payment outcome is known."""
    settled = types_pb2.Order()
    settled.CopyFrom(order)
    succeeded = payment.status == types_pb2.PAYMENT_STATUS_SUCCEEDED
    settled.status = types_pb2.ORDER_STATUS_PAID if succeeded else types_pb2.ORDER_STATUS_PAYMENT_DECLINED
    settled.update_time.CopyFrom(timestamps.now())
    return settled
