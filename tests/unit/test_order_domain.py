"""Order rules: which requests are refused (and on which field), totals, fingerprints."""

from __future__ import annotations

import pytest
from shop.v1 import types_pb2

from order_svc import domain
from shoplib.rules import bounds, money
from tests.support import line

SYNC = types_pb2.FLOW_MODE_SYNC


def fields_of(violations: list[tuple[str, str]]) -> list[str]:
    return [field for field, _ in violations]


def violation_fields(lines: list[types_pb2.OrderLine], key: str = "key-1", customer: str = "cust-1",
             mode: int = SYNC) -> list[str]:
    return fields_of(domain.violations(key, customer, lines, mode))


def test_a_valid_order_has_no_problems() -> None:
    assert violation_fields([line(), line("sku-2", 3, 500)]) == []


@pytest.mark.parametrize("customer", ["", "   "])
def test_an_empty_customer_is_refused_on_customer_id(customer: str) -> None:
    assert violation_fields([line()], customer=customer) == ["customer_id"]


def test_an_empty_idempotency_key_is_refused_on_idempotency_key() -> None:
    assert violation_fields([line()], key="") == ["idempotency_key"]


def test_an_over_long_or_unprintable_id_is_refused() -> None:
    assert violation_fields([line()], customer="c" * (bounds.MAX_ID_LENGTH + 1)) == ["customer_id"]
    assert violation_fields([line()], key="bad\nkey") == ["idempotency_key"]


def test_an_order_without_lines_is_refused_on_lines() -> None:
    assert violation_fields([]) == ["lines"]


@pytest.mark.parametrize("quantity", [0, -1])
def test_a_quantity_of_zero_or_less_is_refused_on_that_line(quantity: int) -> None:
    assert violation_fields([line(), line(quantity=quantity)]) == ["lines[1].quantity"]


def test_a_quantity_above_the_maximum_is_refused() -> None:
    assert violation_fields([line(quantity=domain.MAX_QUANTITY + 1)]) == ["lines[0].quantity"]


def test_a_line_without_product_or_price_is_refused_on_each_field() -> None:
    bare = types_pb2.OrderLine(quantity=1)
    assert violation_fields([bare]) == ["lines[0].product_id", "lines[0].unit_price"]


def test_a_negative_amount_is_refused_on_the_unit_price() -> None:
    assert violation_fields([line(amount_minor=-1)]) == ["lines[0].unit_price.amount_minor"]


def test_a_unit_price_above_the_maximum_amount_is_refused() -> None:
    assert violation_fields([line(amount_minor=money.MAX_AMOUNT_MINOR + 1)]) == ["lines[0].unit_price.amount_minor"]


def test_a_total_above_the_maximum_amount_is_refused_on_lines() -> None:
    # Each line is valid on its own (price and quantity within bounds); their total is not.
    lines = [line("a", 2, money.MAX_AMOUNT_MINOR), line("b", 1, 1)]
    found = domain.violations("key-1", "cust-1", lines, SYNC)
    assert fields_of(found) == ["lines"]
    assert "order total" in found[0][1]


def test_a_total_beyond_int64_is_refused_on_lines_rather_than_crashing() -> None:
    # 100 lines of 10,000 units at the maximum price add up to 10**19 minor units: more than an
    # int64 (and so a Money) can hold. The request must still be a field violation, not a crash.
    lines = [line(f"sku-{i}", domain.MAX_QUANTITY, money.MAX_AMOUNT_MINOR) for i in range(domain.MAX_LINES)]
    found = domain.violations("key-1", "cust-1", lines, SYNC)
    assert fields_of(found) == ["lines"]
    assert "order total" in found[0][1]


@pytest.mark.parametrize("currency", ["EUX", "eur", ""])
def test_an_unknown_currency_is_refused_on_the_currency_code(currency: str) -> None:
    assert violation_fields([line(currency=currency)]) == ["lines[0].unit_price.currency_code"]


def test_lines_in_different_currencies_are_refused_on_lines() -> None:
    found = domain.violations("key-1", "cust-1", [line(currency="EUR"), line("sku-2", currency="USD")], SYNC)
    assert fields_of(found) == ["lines"]
    assert "one currency" in found[0][1]


def test_more_than_the_maximum_number_of_lines_is_refused_on_lines() -> None:
    assert violation_fields([line(f"sku-{i}") for i in range(domain.MAX_LINES)]) == []
    assert violation_fields([line(f"sku-{i}") for i in range(domain.MAX_LINES + 1)]) == ["lines"]


@pytest.mark.parametrize("mode", [types_pb2.FLOW_MODE_UNSPECIFIED, 99])
def test_a_mode_other_than_sync_or_events_is_refused_on_mode(mode: int) -> None:
    assert violation_fields([line()], mode=mode) == ["mode"]


def test_every_problem_of_a_request_is_reported_at_once() -> None:
    found = violation_fields([line(quantity=0, currency="XXX")], key="", customer="", mode=0)
    assert found == ["idempotency_key", "customer_id", "lines[0].quantity", "lines[0].unit_price.currency_code",
                     "mode"]


def test_the_total_is_the_sum_of_quantity_times_unit_price_in_the_order_currency() -> None:
    total = domain.total_of([line("a", 2, 1_999, "USD"), line("b", 3, 250, "USD")])
    assert total == types_pb2.Money(currency_code="USD", amount_minor=2 * 1_999 + 3 * 250)


def test_a_new_order_is_pending_with_its_total_mode_and_key() -> None:
    lines = [line("a", 2, 1_000)]
    order = domain.new_order("key-1", "cust-1", lines, types_pb2.FLOW_MODE_EVENTS)
    assert order.status == types_pb2.ORDER_STATUS_PENDING
    assert order.total.amount_minor == 2_000
    assert (order.mode, order.idempotency_key, order.customer_id) == (types_pb2.FLOW_MODE_EVENTS, "key-1", "cust-1")
    assert order.order_id.startswith("ord_")
    assert order.order_id != domain.new_order("key-1", "cust-1", lines, SYNC).order_id


def test_the_fingerprint_is_stable_for_the_same_request() -> None:
    assert domain.fingerprint("c", [line(), line("b")], SYNC) == domain.fingerprint("c", [line(), line("b")], SYNC)


@pytest.mark.parametrize("other", [
    ("c2", [line(), line("b")], SYNC),
    ("c", [line(), line("b", quantity=2)], SYNC),
    ("c", [line(), line("b", amount_minor=1)], SYNC),
    ("c", [line("b"), line()], SYNC),
    ("c", [line()], SYNC),
    ("c", [line(), line("b")], types_pb2.FLOW_MODE_EVENTS),
])
def test_the_fingerprint_changes_with_customer_lines_or_mode(other: tuple[str, list[types_pb2.OrderLine], int]
                                                             ) -> None:
    assert domain.fingerprint(*other) != domain.fingerprint("c", [line(), line("b")], SYNC)


@pytest.mark.parametrize(("outcome", "status"), [
    (types_pb2.PAYMENT_STATUS_SUCCEEDED, types_pb2.ORDER_STATUS_PAID),
    (types_pb2.PAYMENT_STATUS_DECLINED, types_pb2.ORDER_STATUS_PAYMENT_DECLINED),
])
def test_settling_follows_the_payment_outcome_and_leaves_the_original_untouched(outcome: int, status: int) -> None:
    order = domain.new_order("key-1", "cust-1", [line()], SYNC)
    settled = domain.settle(order, types_pb2.Payment(order_id=order.order_id, status=outcome))
    assert settled.status == status
    assert order.status == types_pb2.ORDER_STATUS_PENDING
    assert settled.order_id == order.order_id
