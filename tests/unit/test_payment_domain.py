"""Payment rules: the decline limit and what a charge request must carry."""

from __future__ import annotations

import pytest
from shop.v1 import events_pb2, types_pb2

from payment_svc import domain
from shoplib.rules import money

RULES = domain.Rules(decline_above_minor=100_000)


def eur(amount_minor: int) -> types_pb2.Money:
    return money.money("EUR", amount_minor)


def test_an_amount_above_the_limit_is_declined_with_a_reason() -> None:
    payment = domain.decide("ord-1", "cust-1", eur(100_001), RULES)
    assert payment.status == types_pb2.PAYMENT_STATUS_DECLINED
    assert "limit" in payment.decline_reason


@pytest.mark.parametrize("amount_minor", [0, 1, 99_999, 100_000])
def test_an_amount_at_or_below_the_limit_succeeds_without_reason(amount_minor: int) -> None:
    payment = domain.decide("ord-1", "cust-1", eur(amount_minor), RULES)
    assert payment.status == types_pb2.PAYMENT_STATUS_SUCCEEDED
    assert payment.decline_reason == ""


def test_the_limit_is_a_rule_not_a_constant() -> None:
    assert domain.decide("o", "c", eur(500), domain.Rules(decline_above_minor=499)).status == \
        types_pb2.PAYMENT_STATUS_DECLINED


def test_a_decision_carries_the_order_customer_and_amount() -> None:
    payment = domain.decide("ord-1", "cust-1", eur(1_234), RULES)
    assert (payment.order_id, payment.customer_id, payment.amount) == ("ord-1", "cust-1", eur(1_234))
    assert payment.payment_id.startswith("pay_")


def test_the_outcome_event_is_named_after_the_fact() -> None:
    assert isinstance(domain.outcome_event(domain.decide("o", "c", eur(1), RULES)), events_pb2.PaymentSucceeded)
    assert isinstance(domain.outcome_event(domain.decide("o", "c", eur(10**6), RULES)), events_pb2.PaymentDeclined)


def test_a_charge_request_needs_order_customer_and_a_valid_amount() -> None:
    assert domain.violations("ord_1", "c", eur(1)) == []
    found = [field for field, _ in domain.violations("", " ", types_pb2.Money(currency_code="EUX", amount_minor=-5))]
    assert found == ["order_id", "customer_id", "amount.currency_code", "amount.amount_minor"]
