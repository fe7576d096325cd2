"""What a valid order is, written out on its own: the oracle for "no invalid order is stored" and
for "a valid request is not refused".

Deliberately not order_svc.domain.problems (that is what is under test): the published limits are
shared constants, the rules are restated here.
"""

from __future__ import annotations

from collections.abc import Sequence

from shop.v1 import types_pb2

from shoplib.rules.bounds import MAX_AMOUNT_MINOR, MAX_ID_LENGTH, MAX_LINES, MAX_QUANTITY
from shoplib.rules.money import ISO_4217

MODES = (types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS)


def _bad_id(value: str) -> bool:
    return not value.strip() or len(value) > MAX_ID_LENGTH or not value.isprintable()


def _bad_money(value: types_pb2.Money) -> bool:
    return value.currency_code not in ISO_4217 or not 0 <= value.amount_minor <= MAX_AMOUNT_MINOR


def _line_problems(line: types_pb2.OrderLine) -> list[str]:
    found = ["product_id"] if _bad_id(line.product_id) else []
    if not 1 <= line.quantity <= MAX_QUANTITY:
        found.append(f"quantity {line.quantity}")
    if not line.HasField("unit_price") or _bad_money(line.unit_price):
        found.append("unit_price")
    return found


def problems(key: str, customer: str, lines: Sequence[types_pb2.OrderLine], mode: int) -> list[str]:
    """Every rule an order (or a request for one) breaks; empty for a valid one."""
    found = [name for name, value in (("idempotency_key", key), ("customer_id", customer)) if _bad_id(value)]
    if not 1 <= len(lines) <= MAX_LINES:
        return [*found, f"{len(lines)} lines"]
    for line in lines:
        found += _line_problems(line)
    if len({line.unit_price.currency_code for line in lines}) != 1:
        found.append("mixed currencies")
    if not found and sum(line.quantity * line.unit_price.amount_minor for line in lines) > MAX_AMOUNT_MINOR:
        found.append("total above the limit")
    if mode not in MODES:
        found.append(f"mode {mode}")
    return found


def request_problems(request: object, default_mode: int = types_pb2.FLOW_MODE_SYNC) -> list[str]:
    """A PlaceOrderRequest's problems; an unspecified mode is the gateway's default."""
    mode = request.mode or default_mode  # type: ignore[attr-defined]
    return problems(request.idempotency_key, request.customer_id, request.lines, mode)  # type: ignore[attr-defined]


def order_problems(order: types_pb2.Order) -> list[str]:
    """A stored order's problems, its total included."""
    found = problems(order.idempotency_key, order.customer_id, order.lines, order.mode)
    total = sum(line.quantity * line.unit_price.amount_minor for line in order.lines)
    if total != order.total.amount_minor or _bad_money(order.total):
        found.append(f"total {order.total.amount_minor} (lines sum to {total})")
    return found
