"""Payment rules. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from shop.v1 import events_pb2, types_pb2

from shoplib.rules import ids, money, timestamps
from shoplib.rules.fields import id_violations, order_id_violations


@dataclass(frozen=True)
class Rules:
    decline_above_minor: int = 100_000  # 1,000.00 in the order's currency


def violations(order_id: str, customer_id: str, amount: types_pb2.Money) -> list[tuple[str, str]]:
    found = order_id_violations("order_id", order_id) + id_violations("customer_id", customer_id)
    return found + money.violations("amount", amount)


def decide(order_id: str, customer_id: str, amount: types_pb2.Money, rules: Rules) -> types_pb2.Payment:
    """Declined, deterministically, when the amount is above the limit; otherwise succeeded."""
    declined = amount.amount_minor > rules.decline_above_minor
    payment = types_pb2.Payment(
        payment_id=f"pay_{ids.hex_id()}", order_id=order_id, customer_id=customer_id, amount=amount,
        status=types_pb2.PAYMENT_STATUS_DECLINED if declined else types_pb2.PAYMENT_STATUS_SUCCEEDED,
        decline_reason=_decline_reason(amount.currency_code, rules) if declined else "")
    timestamps.stamp(payment.create_time)  # in place: a Timestamp passed in would be copied
    return payment


def _decline_reason(currency_code: str, rules: Rules) -> str:
    """Formatted only for a declined payment: a paid one (nearly all) has no reason to show."""
    return f"amount above the limit of {money.format_money(money.money(currency_code, rules.decline_above_minor))}"


def outcome_event(payment: types_pb2.Payment) -> events_pb2.PaymentSucceeded | events_pb2.PaymentDeclined:
    if payment.status == types_pb2.PAYMENT_STATUS_SUCCEEDED:
        return events_pb2.PaymentSucceeded(payment=payment)
    return events_pb2.PaymentDeclined(payment=payment)
